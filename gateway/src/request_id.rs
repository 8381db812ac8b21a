//! Request ids the gateway can recognise as its own, without a database.
//!
//! An id is a UUIDv8 (RFC 9562, "custom"). Of its 122 free bits, 90 are id material and 32
//! are a tag: the first 32 bits of HMAC-SHA256(secret, "request-id:" + material). The status
//! route checks the tag before it touches the database, so an id the gateway never issued
//! is answered 404 at once and can never be reported as completed.
//!
//! Material is random, or, for a request with an `Idempotency-Key`, derived from
//! HMAC(secret, "idempotency-key:" + key + the request's fingerprint): retries of the same
//! request with the same key get the same id, and the registration-service's upsert by request
//! id turns them into one user; a *different* request under a reused key gets a different id,
//! so it can never be mistaken for the first one's row.
//!
//! 90 random bits make a collision among a billion ids about a 1 in 2.5 billion event; a
//! forged id passes the tag with probability 2^-32 and then only reads a status.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::{Uuid, Variant};

use crate::configuration::RequestIdSecret;
use crate::idempotency::Fingerprint;

type HmacSha256 = Hmac<Sha256>;

const MATERIAL_BITS: u32 = 90;
const TAG_BITS: u32 = 32;
const MATERIAL_MASK: u128 = (1 << MATERIAL_BITS) - 1;

/// Issues and verifies request ids with one secret.
#[derive(Clone)]
pub struct RequestIds {
    secret: RequestIdSecret,
}

impl RequestIds {
    pub fn new(secret: RequestIdSecret) -> Self {
        Self { secret }
    }

    /// A fresh id with random material.
    pub fn random(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        self.issue(u128::from_be_bytes(bytes) & MATERIAL_MASK)
    }

    /// The id of the request with this `Idempotency-Key` and this fingerprint, on every
    /// retry, at every instance that shares the secret.
    pub fn for_idempotency_key(&self, key: &str, fingerprint: &Fingerprint) -> Uuid {
        // Length prefix: no (key, fingerprint) pair can be read as another.
        let mut mac = self.mac(b"idempotency-key:", &(key.len() as u64).to_be_bytes());
        mac.update(key.as_bytes());
        mac.update(fingerprint.as_bytes());
        let digest = mac.finalize().into_bytes();
        let first16: [u8; 16] = digest[..16].try_into().expect("SHA-256 has 32 bytes");
        self.issue(u128::from_be_bytes(first16) & MATERIAL_MASK)
    }

    /// Whether `id` is one this secret issued.
    pub fn verify(&self, id: &Uuid) -> bool {
        if id.get_version_num() != 8 || id.get_variant() != Variant::RFC4122 {
            return false;
        }
        let bits = unpack(id.as_u128());
        let material = bits >> TAG_BITS;
        let tag = (bits as u32).to_be_bytes();
        // Constant-time comparison: the tag must not be guessable byte by byte from timings.
        self.mac(b"request-id:", &material.to_be_bytes()).verify_truncated_left(&tag).is_ok()
    }

    fn issue(&self, material: u128) -> Uuid {
        let digest = self.mac(b"request-id:", &material.to_be_bytes()).finalize().into_bytes();
        let tag = u32::from_be_bytes(digest[..4].try_into().expect("4 bytes"));
        Uuid::from_u128(pack((material << TAG_BITS) | u128::from(tag)))
    }

    fn mac(&self, domain: &[u8], data: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.secret.expose()).expect("HMAC takes any key length");
        mac.update(domain);
        mac.update(data);
        mac
    }
}

// UUID layout (bit 127 = first bit on the wire): 48 custom bits | version (4) | 12 custom
// bits | variant (2) | 62 custom bits. `pack` spreads 122 bits over the custom fields and
// sets version 8 and the RFC variant; `unpack` gathers them back.

fn pack(bits: u128) -> u128 {
    let high = (bits >> 74) & ((1 << 48) - 1);
    let mid = (bits >> 62) & 0xFFF;
    let low = bits & ((1 << 62) - 1);
    (high << 80) | (0x8 << 76) | (mid << 64) | (0b10 << 62) | low
}

fn unpack(uuid: u128) -> u128 {
    let high = (uuid >> 80) & ((1 << 48) - 1);
    let mid = (uuid >> 64) & 0xFFF;
    let low = uuid & ((1 << 62) - 1);
    (high << 74) | (mid << 62) | low
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> RequestIds {
        RequestIds::new(RequestIdSecret::random())
    }

    #[test]
    fn issued_ids_are_v8_and_verify() {
        let ids = ids();
        for _ in 0..1000 {
            let id = ids.random();
            assert_eq!(id.get_version_num(), 8);
            assert_eq!(id.get_variant(), Variant::RFC4122);
            assert!(ids.verify(&id), "{id}");
        }
    }

    #[test]
    fn foreign_and_tampered_ids_do_not_verify() {
        let ids = ids();
        assert!(!ids.verify(&Uuid::new_v4()));
        assert!(!ids.verify(&Uuid::nil()));
        let other = RequestIds::new(RequestIdSecret::random());
        assert!(!other.verify(&ids.random()), "another secret's id");
        let id = ids.random();
        // Flip each free bit in turn: every single-bit change must break the tag.
        for bit in 0..128 {
            let flipped = Uuid::from_u128(id.as_u128() ^ (1 << bit));
            assert!(!ids.verify(&flipped), "bit {bit}");
        }
    }

    #[test]
    fn idempotency_keys_map_to_stable_distinct_ids() {
        let ids = ids();
        let (body_a, body_b) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        let a = ids.for_idempotency_key("order-1", &body_a);
        assert_eq!(a, ids.for_idempotency_key("order-1", &body_a));
        assert_ne!(a, ids.for_idempotency_key("order-2", &body_a));
        assert_ne!(
            a,
            ids.for_idempotency_key("order-1", &body_b),
            "another body under the same key must not collapse onto the first request"
        );
        assert!(ids.verify(&a));
        assert_ne!(a, RequestIds::new(RequestIdSecret::random()).for_idempotency_key("order-1", &body_a));
    }

    #[test]
    fn packing_round_trips_122_bits() {
        let all = (1u128 << 122) - 1;
        for bits in [0, all, 0x1234_5678_9abc_def0_1234_5678 & all, 1 << 121, 1 << 62, 1 << 74] {
            assert_eq!(unpack(pack(bits)), bits);
        }
    }
}
