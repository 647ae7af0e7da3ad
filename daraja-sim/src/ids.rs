//! Realistic Daraja identifiers and timestamps (Nairobi local time, UTC+3):
//! `ws_CO_…` CheckoutRequestIDs, hex-style MerchantRequestID/OriginatorConversationID,
//! `AG_…` ConversationIDs, 10-character receipts and 28-character access tokens.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use rand::Rng;
use time::macros::{format_description, offset};
use time::{OffsetDateTime, UtcOffset};

/// East Africa Time, no daylight saving.
pub const NAIROBI: UtcOffset = offset!(+3);

static SEQ: AtomicU64 = AtomicU64::new(0);
static LAST_CHECKOUT_MS: AtomicI64 = AtomicI64::new(0);

/// Current time in Nairobi.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().to_offset(NAIROBI)
}

fn seq() -> u64 {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    if n == 0 {
        // First use: start at a random offset so ids differ between runs.
        let start = rand::thread_rng().gen_range(1_000_000..5_000_000u64);
        SEQ.fetch_add(start, Ordering::Relaxed);
        return start;
    }
    n
}

fn hex(n: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut rng = rand::thread_rng();
    (0..n).map(|_| HEX[rng.gen_range(0..16)] as char).collect()
}

/// `2654-4b64-97ff-b827b542881d3130`-style id (MerchantRequestID, generated OriginatorConversationID, requestId).
pub fn proxy_id() -> String {
    format!("{}-{}-{}-{}{}", hex(4), hex(4), hex(4), hex(12), seq())
}

/// Gateway request id for error envelopes.
pub fn request_id() -> String {
    proxy_id()
}

/// `ws_CO_` + DDMMYYYYHHmmss + 3-digit millis + last 9 digits of the MSISDN, e.g.
/// `ws_CO_230920262019337708374149`. Millis are kept strictly increasing so ids are unique.
pub fn checkout_request_id(msisdn: &str) -> String {
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut last = LAST_CHECKOUT_MS.load(Ordering::Relaxed);
    let ms = loop {
        let next = now_ms.max(last + 1);
        match LAST_CHECKOUT_MS.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .to_offset(NAIROBI);
    let stamp = t
        .format(format_description!(
            "[day][month][year][hour][minute][second]"
        ))
        .unwrap_or_default();
    let tail = if msisdn.len() >= 9 {
        &msisdn[msisdn.len() - 9..]
    } else {
        msisdn
    };
    format!("ws_CO_{stamp}{:03}{tail}", ms.rem_euclid(1000))
}

/// `AG_20240706_20106e9209f64bebd05b`-style ConversationID.
pub fn conversation_id() -> String {
    let date = now()
        .format(format_description!("[year][month][day]"))
        .unwrap_or_default();
    format!("AG_{date}_2010{}", hex(16))
}

/// 10-character uppercase receipt: year letter, month letter, day char, then 7 random alnum
/// (`UJ22T8IYOU` = 2026-10-02).
pub fn receipt() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut s = receipt_prefix();
    let mut rng = rand::thread_rng();
    for _ in 0..7 {
        s.push(ALNUM[rng.gen_range(0..ALNUM.len())] as char);
    }
    s
}

/// The first three receipt characters for today.
pub fn receipt_prefix() -> String {
    const DAYS: &[u8] = b"123456789ABCDEFGHIJKLMNOPQRSTUV";
    let t = now();
    let year = (b'A' + ((t.year() - 2006).rem_euclid(26)) as u8) as char;
    let month = (b'A' + (u8::from(t.month()) - 1)) as char;
    let day = DAYS[usize::from(t.day() - 1)] as char;
    format!("{year}{month}{day}")
}

/// Zero-padded TransactionID carried by failed/non-financial results (`SKE0000000`).
pub fn zero_receipt() -> String {
    format!("{}0000000", receipt_prefix())
}

/// 28-character alphanumeric access token.
pub fn access_token() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..28)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect()
}

/// `YYYYMMDDHHmmss` in Nairobi time.
pub fn timestamp14(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year][month][day][hour][minute][second]"
    ))
    .unwrap_or_default()
}

/// `DD.MM.YYYY HH:mm:ss` (B2C TransactionCompletedDateTime).
pub fn dotted_datetime(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[day].[month].[year] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// RFC 3339 UTC time for records.
pub fn rfc3339_utc(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_ids_are_unique_and_shaped() {
        let a = checkout_request_id("254708374149");
        let b = checkout_request_id("254708374149");
        assert_ne!(a, b);
        assert!(a.starts_with("ws_CO_") && a.ends_with("708374149"), "{a}");
        assert_eq!(a.len(), "ws_CO_".len() + 14 + 3 + 9);
    }

    #[test]
    fn receipts_are_ten_uppercase_alnum() {
        let r = receipt();
        assert_eq!(r.len(), 10);
        assert!(
            r.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        assert_eq!(zero_receipt().len(), 10);
        assert_eq!(access_token().len(), 28);
    }

    #[test]
    fn conversation_ids() {
        let c = conversation_id();
        assert!(
            c.starts_with("AG_") && c.len() == "AG_20240706_20106e9209f64bebd05b".len(),
            "{c}"
        );
    }
}
