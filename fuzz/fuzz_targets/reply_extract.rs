//! Fuzzes a received reply end to end: mail-parser, reply extraction, HTML to text. The body, and
//! what it checks beyond "no panic", is `herald::fuzzing::reply_extract`, which a unit test also
//! runs over every kept input.

#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| herald::fuzzing::reply_extract(input));
