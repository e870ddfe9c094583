//! The `eval` expression language: parser and evaluator.
pub mod parse;
