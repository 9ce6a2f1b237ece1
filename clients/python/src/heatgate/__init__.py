"""HeatGate's Python client: the read-contract resolver, the decision-stream follower, the plan-id
derivation, where the two stores are (run_dir) and a producer (docs/apply-layer.md, docs/contract.md). Needs pyzmq and py-lmdb.

    from heatgate import HeatGate, Follower, Producer, proposal_key
"""
from .plan import Rejected, normalise_action, plan_id, proposal_key, same_action
from .apply import HeatGate, Resolution, contract, kill_switch_on
from .follow import Event, Follower
from .stores import default_run_dir, run_dir
from .producer import Producer, QueueFull

__version__ = "0.1.0"
__all__ = [
    "Event", "Follower", "HeatGate", "Producer", "QueueFull", "Rejected", "Resolution", "contract",
    "default_run_dir", "kill_switch_on", "normalise_action", "plan_id", "proposal_key", "run_dir", "same_action",
]
