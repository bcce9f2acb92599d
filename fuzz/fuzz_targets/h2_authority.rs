//! The Unix sockets' HTTP/2 `:authority` rewriter on a client's raw bytes: never panics, and gives
//! the same output (or the same failure) whether the bytes arrive at once or in pieces.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use spire_uds::authority::AuthorityRewriter;

/// Runs `input` through a fresh rewriter in chunks of `chunk` bytes (0: all at once).
fn run(input: &[u8], chunk: usize) -> Option<Vec<u8>> {
    let mut rewriter = AuthorityRewriter::new();
    let (mut pending, mut out) = (BytesMut::new(), BytesMut::new());
    let step = if chunk == 0 { input.len().max(1) } else { chunk };
    for piece in input.chunks(step) {
        pending.extend_from_slice(piece);
        rewriter.process(&mut pending, &mut out).ok()?;
    }
    Some(out.to_vec())
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let whole = run(input, 0);
    let pieces = run(input, usize::from(chunk % 17) + 1);
    assert_eq!(whole, pieces);
});
