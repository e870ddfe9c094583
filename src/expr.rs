//! The `eval` expression language: parser and evaluator.
pub mod eval;
pub mod parse;
