//! Process names: `<app>-<type>-<hash>-<suffix>`, shaped like the pods of a
//! Kubernetes Deployment.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Kubernetes' "safe" alphabet: no vowels, no look-alikes.
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Encode bytes in the safe alphabet.
fn encode_safe(bytes: &[u8], len: usize) -> String {
    bytes
        .iter()
        .cycle()
        .take(len)
        .map(|b| SAFE_ALPHABET[*b as usize % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// The stable template hash of (app, type, release, restart generation):
/// 9 characters of the safe alphabet. A new release or a restart of the type
/// gives a new hash, so the names of new processes show the change.
pub fn template_hash(app: &str, ptype: &str, release: u32, generation: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(app.as_bytes());
    hasher.update([0]);
    hasher.update(ptype.as_bytes());
    hasher.update([0]);
    hasher.update(release.to_be_bytes());
    hasher.update(generation.to_be_bytes());
    encode_safe(&hasher.finalize(), 9)
}

/// [`template_hash`] of a template whose processes run as user `uid`
/// (`None`: the engine's own user, the same hash as [`template_hash`]).
/// Processes started under another user (or none) have another hash, so
/// the engine replaces them: a platform that starts isolating apps rolls
/// each app's processes onto its user once.
pub fn template_hash_as(
    app: &str,
    ptype: &str,
    release: u32,
    generation: u64,
    uid: Option<u32>,
) -> String {
    let Some(uid) = uid else {
        return template_hash(app, ptype, release, generation);
    };
    let mut hasher = Sha256::new();
    hasher.update(app.as_bytes());
    hasher.update([0]);
    hasher.update(ptype.as_bytes());
    hasher.update([0]);
    hasher.update(release.to_be_bytes());
    hasher.update(generation.to_be_bytes());
    hasher.update(b"uid");
    hasher.update(uid.to_be_bytes());
    encode_safe(&hasher.finalize(), 9)
}

/// Five random characters of the safe alphabet, new for every process.
pub fn random_suffix<R: Rng + ?Sized>(rng: &mut R) -> String {
    (0..5)
        .map(|_| SAFE_ALPHABET[rng.gen_range(0..SAFE_ALPHABET.len())] as char)
        .collect()
}

pub fn process_name(app: &str, ptype: &str, hash: &str, suffix: &str) -> String {
    format!("{app}-{ptype}-{hash}-{suffix}")
}

/// A new process name of `app`/`ptype` with template `hash` that `taken`
/// does not know yet: random suffixes until one is free (27^5 of them: a
/// clash is rare, but a name must be unique).
pub fn unique_process_name<R: Rng + ?Sized>(
    rng: &mut R,
    app: &str,
    ptype: &str,
    hash: &str,
    taken: impl Fn(&str) -> bool,
) -> String {
    loop {
        let name = process_name(app, ptype, hash, &random_suffix(rng));
        if !taken(&name) {
            return name;
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn unique_process_names_skip_the_taken_ones() {
        let mut rng = rand::thread_rng();
        let first = unique_process_name(&mut rng, "a", "web", "h", |_| false);
        assert!(first.starts_with("a-web-h-"));
        let second = unique_process_name(&mut rng, "a", "web", "h", |n| n == first);
        assert_ne!(first, second);
    }

    use super::*;

    #[test]
    fn hash_is_stable_and_changes_with_release_and_generation() {
        let a = template_hash("steely-mainsail", "web", 3, 0);
        assert_eq!(a, template_hash("steely-mainsail", "web", 3, 0));
        assert_eq!(a.len(), 9);
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_ne!(a, template_hash("steely-mainsail", "web", 4, 0));
        assert_ne!(a, template_hash("steely-mainsail", "web", 3, 1));
        assert_ne!(a, template_hash("steely-mainsail", "worker", 3, 0));
        assert_eq!(a, template_hash_as("steely-mainsail", "web", 3, 0, None));
        let as_user = template_hash_as("steely-mainsail", "web", 3, 0, Some(200_000));
        assert_eq!(as_user.len(), 9);
        assert_ne!(a, as_user);
        assert_ne!(
            as_user,
            template_hash_as("steely-mainsail", "web", 3, 0, Some(200_001))
        );
    }

    #[test]
    fn suffix_uses_safe_alphabet() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let s = random_suffix(&mut rng);
            assert_eq!(s.len(), 5);
            assert!(s.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        }
    }

    #[test]
    fn name_shape() {
        assert_eq!(
            process_name("steely-mainsail", "web", "c4f44c4b4", "7p7dh"),
            "steely-mainsail-web-c4f44c4b4-7p7dh"
        );
    }
}
