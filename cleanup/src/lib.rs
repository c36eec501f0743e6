//! cleanup's header and body checks as a library, so that tests outside
//! the crate (the MIME differential tests) read messages through the same
//! code as the cleanup process.

pub mod checks;
