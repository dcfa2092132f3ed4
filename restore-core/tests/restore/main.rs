//! Restores against a real PostgreSQL: the engine end to end.
//!
//! Each module covers one area. Tests restore into databases of their own on one server the
//! support module provides, and inspect results through psql.

#[path = "../support/mod.rs"]
mod support;

mod harness;

mod atomic;
mod binary;
mod builds;
mod dumps;
mod formats;
mod freeze;
mod loads;
mod pagila;
