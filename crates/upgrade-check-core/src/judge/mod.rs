//! Judges what a replay answered: normalised into placeholders, compared
//! with the accepted snapshot, with noise between the baseline's runs masked.

pub(crate) mod noise;
pub mod normalize;
pub mod snapshot;
pub(crate) mod verdict;
