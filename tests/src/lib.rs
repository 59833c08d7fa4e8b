//! Cross-crate tests live in tests/ and benches/; this library is empty.
