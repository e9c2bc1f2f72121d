//! Replies: the reply-address token (`token`), the reply text of a message (`extract`, with
//! `quotes` and `html`), the webhook (`webhook`) and the processor that ties them (`processor`).

pub mod extract;
#[cfg(test)]
mod extract_shared_tests;
#[cfg(test)]
mod extract_tests;
mod html;
pub mod processor;
mod quotes;
mod reading;
pub mod token;
pub mod webhook;
