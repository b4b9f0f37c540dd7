//! Work after the plan's cells have run: isolating interactions between
//! pins and bisecting a failing package for its newest safe version.

pub(crate) mod bisect;
pub(crate) mod interaction;
