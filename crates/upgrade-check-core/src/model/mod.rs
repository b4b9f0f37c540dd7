//! The values every stage hands on: packages and versions, pins, cells and
//! plans, findings, and the result model reports are rendered from.

pub mod cell;
pub mod event;
pub mod findings;
pub(crate) mod npm_range;
pub mod package;
pub mod report;
pub mod setting;
