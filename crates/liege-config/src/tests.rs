//! End-to-end tests: real files in temporary directories, through the public entry points.
