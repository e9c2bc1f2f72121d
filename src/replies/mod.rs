//! Replies: the reply-address token (`token`), the webhook's signature, request and client
//! (`webhook`), and (with reply processing) extraction of the reply text and the processor.

pub mod token;
pub mod webhook;
