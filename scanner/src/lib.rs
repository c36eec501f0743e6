//! Not a library: the scanner's walk through MIME parts and archives, in a
//! library target only so the fuzz targets in fuzz/ and the MIME
//! differential test (libs/mime/tests) can reach it. The
//! scanner binary uses these same modules; nothing else should depend on
//! this crate.

#![doc(hidden)]

pub mod archive;
pub mod banned;
