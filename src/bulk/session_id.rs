//! Which `_id` a sensor may give a session document (arkime-traffic.md §4/§7, issue #11).
//!
//! Owns one decision: whether a session `_id` is one the authenticated sensor's capture could
//! have written. Capture writes `<S>-` (the index's rotation suffix) and then either
//! - 24 base64url characters (`autoGenerateId=false`, the default, and `sequential`), or
//! - `<node>-<firstFileNum>-<firstPos>` (`consistent`), with its own node name,
//!
//! or no `_id` at all (`autoGenerateId=true`: ES picks one). Anything else could only overwrite
//! a document capture did not write: above all another sensor's session under its consistent
//! id, which the `node` check of the new document cannot catch (the new document names the
//! attacker, and the victim's is gone). Ids over Elasticsearch's 512-byte limit are refused in
//! both modes (ES would reject the item anyway, after part of the bulk was applied).
//!
//! The random form names no node, so its owner cannot be told from the id: the verdict says
//! which form an id has ([`IdForm`]), and an `index` under a random-form id goes to ES as
//! `create` (`bulk::create`): the first writer of an id keeps it.
//!
//! Knows nothing of JSON or index names: `action.rs` hands over the decoded `_id` and the
//! rotation suffix it already checked.

/// Elasticsearch's limit on `_id`, bytes.
pub const MAX_ID_BYTES: usize = 512;

/// Length of capture's random and sequential ids after `<S>-`.
pub const RANDOM_ID_CHARS: usize = 24;

/// Longest number capture writes in a consistent id (file numbers are u32, positions u64).
const MAX_DIGITS: usize = 20;

/// Which of capture's forms an admitted session `_id` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdForm {
    /// `<S>-` and 24 base64url characters (random or sequential): names no node, so anyone
    /// could claim it; written with `create` (first writer wins).
    Random,
    /// `<S>-<own node>-<fileNum>-<pos>`: only this sensor may write it, so `index` (capture
    /// re-importing a pcap file rewrites the same ids) stays `index`.
    OwnConsistent,
}

/// The `_id` limit every action is held to, in both modes.
pub fn check_length(id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "_id is {} bytes, over Elasticsearch's {MAX_ID_BYTES}",
            id.len()
        ));
    }
    Ok(())
}

/// Strict mode: `id` of a session document in the index whose rotation suffix is `suffix`,
/// written by `node`. `sensors` are the configured sensor names: a random-shaped id that reads
/// as another sensor's consistent id is refused (24 characters are enough for a node name and
/// two numbers, so the shapes overlap). Returns the id's form; the error is a short reason for
/// the log.
pub fn check_strict<S: AsRef<str>>(
    id: &str,
    suffix: &str,
    node: &str,
    sensors: &[S],
) -> Result<IdForm, String> {
    check_length(id)?;
    let Some(rest) = id.strip_prefix(suffix).and_then(|r| r.strip_prefix('-')) else {
        return Err("_id does not start with the index suffix".into());
    };
    if is_consistent_of(rest, node) {
        return Ok(IdForm::OwnConsistent);
    }
    if !is_random(rest) {
        return Err(
            "_id is neither capture's random form nor a consistent id of this sensor".into(),
        );
    }
    if let Some(other) = consistent_node(rest) {
        if other != node && sensors.iter().any(|s| s.as_ref() == other) {
            return Err("_id is another sensor's consistent id".into());
        }
    }
    Ok(IdForm::Random)
}

/// `[A-Za-z0-9_-]{24}`.
fn is_random(rest: &str) -> bool {
    rest.len() == RANDOM_ID_CHARS && rest.bytes().all(|b| BASE64URL[usize::from(b)])
}

/// Which bytes are base64url characters (a table: every session `_id` of capture's random
/// form goes through [`is_random`]).
const BASE64URL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

/// `<node>-<digits>-<digits>` with exactly this `node` (so `toronto01` never matches an id of
/// `toronto011`: the node must be followed by `-`).
fn is_consistent_of(rest: &str, node: &str) -> bool {
    rest.strip_prefix(node)
        .and_then(|t| t.strip_prefix('-'))
        .is_some_and(two_numbers)
}

/// The node name of a `<node>-<digits>-<digits>` id, if it has that shape (node names may
/// contain `-`; the two numbers never do).
fn consistent_node(rest: &str) -> Option<&str> {
    // Most random ids do not end in a digit: no need to split them.
    if !rest.ends_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut parts = rest.rsplitn(3, '-');
    let (pos, num, node) = (parts.next()?, parts.next()?, parts.next()?);
    (is_number(pos) && is_number(num) && !node.is_empty()).then_some(node)
}

/// `<digits>-<digits>`.
fn two_numbers(t: &str) -> bool {
    t.split_once('-')
        .is_some_and(|(a, b)| is_number(a) && is_number(b))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENSORS: &[&str] = &["toronto01", "toronto011", "paris-02"];

    fn strict(id: &str, node: &str) -> Result<(), String> {
        check_strict(id, "260819", node, SENSORS).map(|_| ())
    }

    #[test]
    fn the_verdict_names_the_form() {
        let form = |id| check_strict(id, "260819", "toronto01", SENSORS);
        assert_eq!(form("260819-XyFr4-nVi-Pfro7SVr4ix4J5"), Ok(IdForm::Random));
        assert_eq!(
            form("260819-toronto01-42468-33456471984"),
            Ok(IdForm::OwnConsistent)
        );
        // Own consistent id that also has the random shape: the sensor's own namespace.
        assert_eq!(
            form("260819-toronto01-1234-123456789"),
            Ok(IdForm::OwnConsistent)
        );
        // Another node's shape naming no configured sensor is just a random id.
        assert_eq!(form("260819-nobodyxyz0123-1234-12345"), Ok(IdForm::Random));
    }

    #[test]
    fn capture_random_and_sequential_ids_pass() {
        // The id of arkime-traffic.md §4 and a sequential-looking one.
        assert_eq!(
            strict("260819-XyFr4-nVi-Pfro7SVr4ix4J5", "toronto01"),
            Ok(())
        );
        assert_eq!(
            strict("260819-AAEAAAAAAAAAAAAAAAAAAAAB", "toronto01"),
            Ok(())
        );
        assert_eq!(
            strict("260819-________________________", "toronto01"),
            Ok(())
        );
    }

    #[test]
    fn random_ids_are_exactly_24_base64url_characters() {
        for bad in [
            "260819-XyFr4-nVi-Pfro7SVr4ix4J",   // 23
            "260819-XyFr4-nVi-Pfro7SVr4ix4J55", // 25
            "260819-XyFr4+nVi/Pfro7SVr4ix4J5",  // standard base64
            "260819-XyFr4-nVi-Pfro7SVr4ix4J=",  // padding
            "260819-XyFr4-nVi-Pfro7SVr4ix4J.",
            "260819-XyFr4-nVi-Pfro7SVr4ix4J ",
            "260819-XyFr4-nVi-Pfro7SVr4ix4é",
            "260819-",
        ] {
            assert!(strict(bad, "toronto01").is_err(), "{bad}");
        }
    }

    #[test]
    fn consistent_ids_must_name_the_own_node() {
        assert_eq!(
            strict("260819-toronto01-42468-33456471984", "toronto01"),
            Ok(())
        );
        assert_eq!(strict("260819-paris-02-1-0", "paris-02"), Ok(()));
        assert!(strict("260819-toronto011-42468-24", "toronto01").is_err());
        assert!(strict("260819-singapore01-42468-24", "toronto01").is_err());
        assert!(strict("260819-toronto01-42468-24", "toronto011").is_err());
    }

    #[test]
    fn a_node_that_is_a_prefix_of_another_cannot_write_its_consistent_ids() {
        // toronto01 is a prefix of toronto011: the node must be followed by `-`.
        assert!(strict("260819-toronto011-7-100", "toronto01").is_err());
        assert!(strict("260819-toronto01-7-100", "toronto011").is_err());
        assert_eq!(strict("260819-toronto011-7-100", "toronto011"), Ok(()));
    }

    #[test]
    fn a_random_shaped_id_that_is_another_sensors_consistent_id_is_refused() {
        // 24 characters: looks random, reads as toronto011's file 1234, position 12345678.
        let victim = "260819-toronto011-1234-12345678";
        assert_eq!(victim.len() - "260819-".len(), RANDOM_ID_CHARS);
        assert_eq!(strict(victim, "toronto011"), Ok(()));
        assert!(strict(victim, "toronto01").is_err());
        let victim2 = "260819-paris-02-123-12345678901";
        assert_eq!(victim2.len() - "260819-".len(), RANDOM_ID_CHARS);
        assert!(strict(victim2, "toronto01").is_err());
        // The same shape naming no configured sensor is just a random id.
        assert_eq!(
            strict("260819-nobodyxyz0123-1234-12345", "toronto01"),
            Ok(())
        );
    }

    #[test]
    fn consistent_ids_have_two_plain_numbers() {
        for bad in [
            "260819-toronto01-1",
            "260819-toronto01-1-",
            "260819-toronto01--1",
            "260819-toronto01-1-2-3",
            "260819-toronto01-+1-2",
            "260819-toronto01-1-2x",
            "260819-toronto01-1-2 ",
            "260819-toronto01-123456789012345678901-1",
        ] {
            assert!(strict(bad, "toronto01").is_err(), "{bad}");
        }
    }

    #[test]
    fn the_id_starts_with_the_index_suffix_and_a_dash() {
        assert!(strict("260818-XyFr4-nVi-Pfro7SVr4ix4J5", "toronto01").is_err());
        assert!(strict("260819XyFr4-nVi-Pfro7SVr4ix4J5a", "toronto01").is_err());
        assert!(strict("XyFr4-nVi-Pfro7SVr4ix4J5", "toronto01").is_err());
    }

    #[test]
    fn ids_over_512_bytes_are_refused() {
        let node = "n".repeat(490);
        let ok = format!("260819-{node}-1-2"); // 7 + 490 + 4 = 501
        assert_eq!(
            check_strict(&ok, "260819", &node, SENSORS),
            Ok(IdForm::OwnConsistent)
        );
        let long = format!("260819-{node}-1234567-12345678"); // 513
        assert!(long.len() > MAX_ID_BYTES);
        assert!(check_strict(&long, "260819", &node, SENSORS).is_err());
        assert!(check_length(&"a".repeat(MAX_ID_BYTES)).is_ok());
        assert!(check_length(&"a".repeat(MAX_ID_BYTES + 1)).is_err());
    }
}
