#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| logwisp_fuzz::tls_records_fuzz(data));
