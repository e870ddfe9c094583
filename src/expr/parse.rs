//! Parser of the expression language.
