//! Replies: the reply-address token now; parsing, extraction and webhook delivery arrive with
//! reply processing.

pub mod token;
