//! Outbound mail: the messages herald writes (`message`), the durable notification queue
//! (`queue`), the rustls client set-up for the smarthost (`tls`), the smol adapter that drives
//! the sans-IO client machine over a socket (`session`), the delivery worker (`worker`), and the
//! test email with its transcript (`testmail`), and the operator's retry and drop (`actions`).

pub mod actions;
pub mod message;
pub mod queue;
pub mod session;
pub mod testmail;
pub mod tls;
pub mod worker;
