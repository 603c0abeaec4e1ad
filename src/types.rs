//! Domain newtypes: member ids, roles, hash types and validated hash values.
//!
//! Parsing here is the door: everything that reaches the sequencer or the store went through
//! these constructors, so the rest of the crate never re-checks lengths, hex or ranges.
//! Imports nothing else from the crate but the generated enums.

use std::fmt;

use crate::pb;

/// Why a value was refused. `field` is filled in by the caller, which knows where it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// A member's stable id: 1-64 characters of `[a-z0-9._-]`, starting with a letter or digit.
/// The id `forum` is reserved for the log key (the genesis author).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(String);

impl MemberId {
    /// The reserved author of the genesis entry.
    pub const FORUM: &'static str = "forum";

    /// Parses a member id.
    ///
    /// # Errors
    /// When the id is empty, too long, uses other characters, or is reserved.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        if s.is_empty() || s.len() > 64 {
            return Err(invalid("member id must be 1-64 characters"));
        }
        if !s.chars().all(ok_char) || !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "member id must be [a-z0-9._-] and start with a letter or digit",
            ));
        }
        if s == Self::FORUM {
            return Err(invalid("member id \"forum\" is reserved"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An incident id: 1-64 characters of `[a-z0-9._-]`, starting with a letter or digit (the
/// member-id charset).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentId(String);

impl IncidentId {
    /// Parses an incident id.
    ///
    /// # Errors
    /// When the id is empty, too long or uses other characters.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        if s.is_empty() || s.len() > 64 {
            return Err(invalid("incident id must be 1-64 characters"));
        }
        if !s.chars().all(ok_char) || !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "incident id must be [a-z0-9._-] and start with a letter or digit",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Defines a newtype over 32 bytes: one per meaning, so that a leaf hash can never be passed
/// where a certificate fingerprint is expected.
macro_rules! bytes32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Reads 32 bytes.
            ///
            /// # Errors
            /// When `bytes` is not 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, Invalid> {
                <[u8; 32]>::try_from(bytes).map(Self).map_err(|_| {
                    invalid(format!("expected 32 bytes, got {}", bytes.len()))
                })
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }
    };
}

bytes32!(
    /// SHA-256 of a statement's DSSE pre-authentication encoding: equal digests, equal
    /// statements (docs/signed-bytes.md §4).
    StatementDigest
);
bytes32!(
    /// RFC 6962 leaf hash of a stored log entry: SHA-256(0x00 || entry bytes).
    LeafHash
);
bytes32!(
    /// SHA-256 of a DER TLS certificate: how certificates are bound to members.
    CertFingerprint
);

/// What a member may do (docs/membership.md has the matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Manages membership and keys.
    Admin,
    /// Submits hashes.
    Contributor,
    /// Looks up, matches and syncs.
    Reader,
    /// Looks up and matches only.
    Observer,
    /// Pulls the whole log.
    Replica,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Contributor,
        Role::Reader,
        Role::Observer,
        Role::Replica,
    ];

    /// The role's name as used on the command line and in config.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Contributor => "contributor",
            Role::Reader => "reader",
            Role::Observer => "observer",
            Role::Replica => "replica",
        }
    }

    /// Parses a role name.
    ///
    /// # Errors
    /// When the name is not one of the five roles.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| invalid(format!("unknown role {s:?}")))
    }

    /// The wire value.
    pub fn to_pb(self) -> pb::Role {
        match self {
            Role::Admin => pb::Role::Admin,
            Role::Contributor => pb::Role::Contributor,
            Role::Reader => pb::Role::Reader,
            Role::Observer => pb::Role::Observer,
            Role::Replica => pb::Role::Replica,
        }
    }

    /// Parses a wire value.
    ///
    /// # Errors
    /// For `ROLE_UNSPECIFIED` and unknown numbers.
    pub fn from_pb(v: i32) -> Result<Self, Invalid> {
        match pb::Role::try_from(v) {
            Ok(pb::Role::Admin) => Ok(Role::Admin),
            Ok(pb::Role::Contributor) => Ok(Role::Contributor),
            Ok(pb::Role::Reader) => Ok(Role::Reader),
            Ok(pb::Role::Observer) => Ok(Role::Observer),
            Ok(pb::Role::Replica) => Ok(Role::Replica),
            _ => Err(invalid(format!("unknown role {v}"))),
        }
    }
}

/// The kinds of hash the registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashType {
    /// PDQ: 256-bit perceptual image hash.
    Pdq,
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// MD5 of a normalised URL.
    UrlMd5,
}

impl HashType {
    /// Every hash type.
    pub const ALL: [HashType; 5] = [
        HashType::Pdq,
        HashType::Md5,
        HashType::Sha1,
        HashType::Sha256,
        HashType::UrlMd5,
    ];

    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            HashType::Pdq => "pdq",
            HashType::Md5 => "md5",
            HashType::Sha1 => "sha1",
            HashType::Sha256 => "sha256",
            HashType::UrlMd5 => "url_md5",
        }
    }

    /// Length of the hash in bytes.
    pub fn byte_len(self) -> usize {
        match self {
            HashType::Pdq | HashType::Sha256 => 32,
            HashType::Md5 | HashType::UrlMd5 => 16,
            HashType::Sha1 => 20,
        }
    }

    /// The byte that starts this type's storage keys. Fixed forever: it is on disk (see
    /// `storage::keys::record`, whose test pins each value). The order of the variants above
    /// is the order of these tags, so `ContentHash`'s derived order is its key order.
    pub fn tag(self) -> u8 {
        match self {
            HashType::Pdq => 1,
            HashType::Md5 => 2,
            HashType::Sha1 => 3,
            HashType::Sha256 => 4,
            HashType::UrlMd5 => 5,
        }
    }

    /// Parses a name as printed by [`HashType::name`].
    ///
    /// # Errors
    /// For unknown names.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                invalid(format!(
                    "unknown hash type {s:?} (expected pdq, md5, sha1, sha256 or url_md5)"
                ))
            })
    }

    /// The wire value.
    pub fn to_pb(self) -> pb::HashType {
        match self {
            HashType::Pdq => pb::HashType::Pdq,
            HashType::Md5 => pb::HashType::Md5,
            HashType::Sha1 => pb::HashType::Sha1,
            HashType::Sha256 => pb::HashType::Sha256,
            HashType::UrlMd5 => pb::HashType::UrlMd5,
        }
    }

    /// Parses a wire value.
    ///
    /// # Errors
    /// For `HASH_TYPE_UNSPECIFIED` and unknown numbers.
    pub fn from_pb(v: i32) -> Result<Self, Invalid> {
        match pb::HashType::try_from(v) {
            Ok(pb::HashType::Pdq) => Ok(HashType::Pdq),
            Ok(pb::HashType::Md5) => Ok(HashType::Md5),
            Ok(pb::HashType::Sha1) => Ok(HashType::Sha1),
            Ok(pb::HashType::Sha256) => Ok(HashType::Sha256),
            Ok(pb::HashType::UrlMd5) => Ok(HashType::UrlMd5),
            Ok(pb::HashType::Unspecified) => Err(invalid("hash type is unspecified")),
            Err(_) => Err(invalid(format!("unknown hash type {v}"))),
        }
    }

    /// The type for a storage-key tag byte.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.tag() == tag)
    }
}

impl fmt::Display for HashType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest hash, in bytes (SHA-256 and PDQ).
const MAX_HASH_BYTES: usize = 32;

/// A validated hash: its type and its raw bytes (of exactly `hash_type.byte_len()` bytes).
///
/// The bytes are kept inline, zero-padded to the longest type's: a batch lookup parses,
/// sorts and compares ten thousand of them, without an allocation each. Hashes of one type
/// have one length, so the derived order (type, then the padded bytes) is the order of
/// (type, bytes), which is the order of their `records` keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash {
    hash_type: HashType,
    bytes: [u8; MAX_HASH_BYTES],
}

impl ContentHash {
    /// Parses lowercase hex for a hash type.
    ///
    /// # Errors
    /// Wrong length, characters other than `[0-9a-f]`, or an all-zero PDQ hash (what PDQ gives
    /// for a blank or unreadable image, which would match every other blank image).
    pub fn parse(hash_type: HashType, hex_value: &str) -> Result<Self, Invalid> {
        let want = hash_type.byte_len() * 2;
        if hex_value.len() != want {
            return Err(invalid(format!(
                "{hash_type} hash must be {want} hex characters, got {}",
                hex_value.len()
            )));
        }
        let mut bytes = [0u8; MAX_HASH_BYTES];
        // The decoder takes either case; upper case is counted without branching, so that
        // the loop is vectorised.
        let upper = hex_value
            .bytes()
            .fold(0u8, |n, b| n | u8::from(b.is_ascii_uppercase()));
        if upper != 0 || hex::decode_to_slice(hex_value, &mut bytes[..want / 2]).is_err() {
            return Err(invalid(format!(
                "{hash_type} hash must be lowercase hex [0-9a-f]"
            )));
        }
        if hash_type == HashType::Pdq && bytes.iter().all(|&b| b == 0) {
            return Err(invalid("an all-zero PDQ hash matches every blank image"));
        }
        Ok(Self { hash_type, bytes })
    }

    /// A PDQ hash from its 32 bytes.
    ///
    /// # Errors
    /// When they are all zero (see [`parse`](Self::parse)).
    pub fn pdq(bits: &[u8; 32]) -> Result<Self, Invalid> {
        if bits.iter().all(|&b| b == 0) {
            return Err(invalid("an all-zero PDQ hash matches every blank image"));
        }
        Ok(Self {
            hash_type: HashType::Pdq,
            bytes: *bits,
        })
    }

    /// The hash's type.
    pub fn hash_type(&self) -> HashType {
        self.hash_type
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.hash_type.byte_len()]
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_validation() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        assert!(ContentHash::parse(HashType::Md5, md5).is_ok());
        assert!(ContentHash::parse(HashType::Md5, &md5[1..]).is_err());
        assert!(ContentHash::parse(HashType::Md5, &md5.to_uppercase()).is_err());
        assert!(ContentHash::parse(HashType::Md5, &format!("0x{}", &md5[2..])).is_err());
        assert!(ContentHash::parse(HashType::Md5, &format!("{}g", &md5[1..])).is_err());
        assert_eq!(
            ContentHash::parse(HashType::Md5, md5)
                .unwrap()
                .as_bytes()
                .len(),
            16
        );
        assert!(ContentHash::parse(HashType::Sha1, md5).is_err());
        assert!(ContentHash::parse(HashType::Pdq, &"0".repeat(64)).is_err());
        assert!(ContentHash::parse(HashType::Pdq, &"g".repeat(64)).is_err());
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(ContentHash::parse(HashType::Sha256, sha256).is_ok());
        assert!(ContentHash::parse(HashType::Sha256, &sha256[..62]).is_err());
        assert!(ContentHash::parse(HashType::UrlMd5, md5).is_ok());
        assert!(ContentHash::parse(HashType::UrlMd5, &format!("{md5}0")).is_err());
        let pdq = ContentHash::parse(HashType::Pdq, &"f".repeat(64)).unwrap();
        assert_eq!(pdq.to_hex(), "f".repeat(64));
        assert_eq!(pdq.as_bytes(), [0xff; 32]);
    }

    #[test]
    fn member_ids() {
        assert!(MemberId::parse("alpha-video.inc_1").is_ok());
        for bad in ["", "Alpha", "-x", "forum", "a b", &"a".repeat(65)] {
            assert!(MemberId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
