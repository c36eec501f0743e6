//! The queue-file reader (the record every queue file starts with, both
//! format versions) on any file content. A queue file is written by
//! cleanup, but a corrupt or planted one must be refused, not crash qmgr.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use mailgate_ipc::queue_file::{read_content, read_record};

fuzz_target!(|data: &[u8]| {
    let fd = nix::sys::memfd::memfd_create(c"queue-file", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .expect("memfd_create");
    let mut file = std::fs::File::from(fd);
    file.write_all(data).expect("write");
    if let Ok((record, offset)) = read_record(&file) {
        let content = read_content(&file, offset, record.content_length).expect("content");
        assert_eq!(content.len() as u64, record.content_length);
    }
});
