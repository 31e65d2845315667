//! All integration tests of `server` in one test binary (`cargo test -p server --test
//! integration [FILTER]`): the HTTP behaviour with fake engines (`http`), and the request
//! parsers fuzzed (`fuzz`).

mod common;

mod fuzz;
mod http;
