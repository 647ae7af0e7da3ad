//! End-to-end tests of daraja-sim: real HTTP over loopback, real callback receiver.
#![forbid(unsafe_code)]

mod c2b;
mod common;
mod faults;
mod initiator;
mod mpesa_client;
mod oauth;
mod records;
mod stk;
