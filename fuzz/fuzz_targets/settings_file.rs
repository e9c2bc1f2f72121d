//! Fuzzes the boot config file: TOML, the validator, a second import. The body, and what it checks
//! beyond "no panic", is `herald::fuzzing::settings_file`, which a unit test also runs over every
//! kept input.

#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| herald::fuzzing::settings_file(input));
