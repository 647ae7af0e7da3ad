//! Result codes and their ResultDesc texts per channel (STK callback, STK query, Result APIs),
//! taken from the Daraja portal tables and observed traffic.

use crate::config::Code;

/// ResultDesc in an STK callback.
pub fn stk_callback_desc(code: &Code) -> String {
    match code {
        Code::Num(1032) => "Request cancelled by user".to_owned(),
        Code::Num(1037) => "No response from user.".to_owned(),
        other => common_desc(other),
    }
}

/// ResultDesc in an STK query answer.
pub fn stk_query_desc(code: &Code) -> String {
    match code {
        Code::Num(1032) => "Request Cancelled by user.".to_owned(),
        Code::Num(1037) => "DS timeout user cannot be reached.".to_owned(),
        other => common_desc(other),
    }
}

/// ResultDesc in a Result callback (B2C, status, balance, reversal).
pub fn result_desc(code: &Code) -> String {
    common_desc(code)
}

fn common_desc(code: &Code) -> String {
    let s = match code {
        Code::Num(0) => "The service request is processed successfully.",
        Code::Num(1) => "The balance is insufficient for the transaction.",
        Code::Num(2) => "Declined due to limit rule: less than the minimum transaction amount.",
        Code::Num(3) => "Declined due to limit rule: greater than the maximum transaction amount.",
        Code::Num(4) => "Declined due to limit rule: would exceed daily transfer limit.",
        Code::Num(8) => "Declined due to limit rule: would exceed the maximum balance.",
        Code::Num(11) => "The DebitParty is in an invalid state.",
        Code::Num(17) => "Rule limited.",
        Code::Num(21) => "The initiator is not allowed to initiate this request.",
        Code::Num(1001) => {
            "Unable to lock subscriber, a transaction is already in process for the current subscriber"
        }
        Code::Num(1019) => "Transaction has expired.",
        Code::Num(1025) | Code::Num(9999) => "An error occurred while sending a push request.",
        Code::Num(1032) => "Request cancelled by user.",
        Code::Num(1036) => "SMSC ACK timeout.",
        Code::Num(1037) => "DS timeout user cannot be reached.",
        Code::Num(2001) => "The initiator information is invalid.",
        Code::Num(2006) => {
            "Declined due to account rule: The account status does not allow this transaction."
        }
        Code::Num(2032) => "The transaction receipt number does not exist.",
        Code::Num(2028) => "The request is not permitted according to product assignment.",
        Code::Num(2040) => {
            "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the service."
        }
        Code::Num(8006) => "The security credential is locked.",
        Code::Text(t) if t == "SFC_IC0003" => "The operator does not exist.",
        Code::Text(t) if t == "R000001" => "The transaction has already been reversed.",
        Code::Text(t) if t == "R000002" => "The OriginalTransactionID is invalid.",
        _ => "The service request has failed.",
    };
    s.to_owned()
}

/// Default code/desc of the modelled queue-timeout notification.
pub const QUEUE_TIMEOUT_CODE: i64 = 1037;
/// Default ResultDesc of the modelled queue-timeout notification.
pub const QUEUE_TIMEOUT_DESC: &str = "The request has timed out while awaiting processing.";
