//! What every kind's validation shares.

use crate::spec::validate::Validator;

/// Reports each key set that `kind` does not use.
pub(crate) fn not_for(v: &mut Validator, key: &str, kind: &str, keys: &[(&str, bool)]) {
    for (k, _) in keys.iter().filter(|(_, set)| *set) {
        v.problem(format!("{key}.{k}"), format!("not used by kind = \"{kind}\""), "remove it");
    }
}
