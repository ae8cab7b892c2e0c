#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = seawall_fuzz::target("responses_response") {
        target(data);
    }
});
