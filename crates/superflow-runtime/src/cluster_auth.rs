//! How the processes of a job prove to each other that they belong to it: each side
//! sends a random challenge, and the other answers with an HMAC-SHA256 of it under the
//! job's secret ([`ClusterSecret`]). The secret itself never crosses the wire, and an
//! answer is good for one challenge only.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The bytes of a challenge and of an answer.
pub(crate) const PROOF_BYTES: usize = 32;

/// A random challenge.
pub(crate) type Challenge = [u8; PROOF_BYTES];

/// Which side of a connection answers: the two answers of one handshake differ, so a
/// process cannot pass the other's answer back as its own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// The process that accepted the connection.
    Acceptor,
    /// The process that opened it.
    Connector,
}

/// The secret the processes of one job share (`SUPERFLOW_CLUSTER_SECRET`; the Python
/// driver makes one for each job).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// A secret from its text.
    pub fn new(text: &str) -> ClusterSecret {
        ClusterSecret(text.as_bytes().to_vec())
    }

    fn mac(&self, side: Side, challenge: &Challenge, process: usize, kind: u64) -> Hmac<Sha256> {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(match side {
            Side::Acceptor => b"superflow-acceptor",
            Side::Connector => b"superflow-connector",
        });
        mac.update(challenge);
        mac.update(&(process as u64).to_le_bytes());
        mac.update(&kind.to_le_bytes());
        mac
    }

    /// The answer of `side` to `challenge`, on a connection of `kind` from `process`.
    pub(crate) fn answer(
        &self,
        side: Side,
        challenge: &Challenge,
        process: usize,
        kind: u64,
    ) -> [u8; PROOF_BYTES] {
        self.mac(side, challenge, process, kind)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `answer` is `side`'s answer to `challenge` (compared in constant time).
    pub(crate) fn accepts(
        &self,
        side: Side,
        challenge: &Challenge,
        process: usize,
        kind: u64,
        answer: &[u8],
    ) -> bool {
        self.mac(side, challenge, process, kind)
            .verify_slice(answer)
            .is_ok()
    }
}

/// A fresh random challenge.
pub(crate) fn challenge() -> std::io::Result<Challenge> {
    let mut bytes = [0u8; PROOF_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_holds_for_its_secret_side_challenge_and_connection_only() {
        let secret = ClusterSecret::new("job secret");
        let first = challenge().unwrap();
        let second = challenge().unwrap();
        assert_ne!(first, second, "challenges are random");
        let answer = secret.answer(Side::Connector, &first, 1, 0);
        assert!(secret.accepts(Side::Connector, &first, 1, 0, &answer));
        assert!(!secret.accepts(Side::Acceptor, &first, 1, 0, &answer));
        assert!(!secret.accepts(Side::Connector, &second, 1, 0, &answer));
        assert!(!secret.accepts(Side::Connector, &first, 2, 0, &answer));
        assert!(!secret.accepts(Side::Connector, &first, 1, 1, &answer));
        let other = ClusterSecret::new("another secret");
        assert!(!other.accepts(Side::Connector, &first, 1, 0, &answer));
        assert!(!secret.accepts(Side::Connector, &first, 1, 0, &answer[..16]));
        assert_eq!(format!("{secret:?}"), "ClusterSecret(..)");
    }
}
