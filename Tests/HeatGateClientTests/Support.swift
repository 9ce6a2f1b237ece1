import Foundation
import HeatGateClient
import HeatGateCore
import HeatGateTestSupport

/// Equity 10 000 and one ETH position: heat 0.027, COLD, so a full close is calibrated to PARTIAL_25.
let coldBook = [
    #"{"type":"portfolio","equity_usd":"10000"}"#,
    #"{"type":"position","symbol":"ETHUSDT","position_notional_usd":"1800","sigma":"0.15"}"#,
]

let fullToken = "FULL_CLOSE_PROPOSED"

func proposal(_ plan: String, _ action: String = "FULL_CLOSE_PROPOSED", symbol: String = "ETHUSDT") -> String {
    #"{"type":"proposal","symbol":"\#(symbol)","harvest_action":"\#(action)","plan_id":"\#(plan)"}"#
}

func now() -> Double { Date().timeIntervalSince1970 }
