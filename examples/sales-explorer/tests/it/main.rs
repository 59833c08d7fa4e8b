//! Integration tests of the sales explorer, through the same entry point the platform
//! calls (`App::run_callback`).

mod python_check;
