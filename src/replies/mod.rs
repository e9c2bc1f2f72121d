//! Replies: the reply-address token (`token`), the reply text of a message (`extract`, with
//! `text` and `html`), the webhook (`webhook`) and the processor that ties them (`processor`).

#[cfg(test)]
mod corpus_tests;
pub mod extract;
#[cfg(test)]
mod extract_shared_tests;
#[cfg(test)]
mod extract_tests;
mod html;
pub mod lab;
pub mod processor;
mod reading;
mod text;
pub mod token;
pub mod webhook;
