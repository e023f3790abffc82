//! A raw document's top-level fields, parsed once.
//!
//! Looking a key up in raw BSON walks (and UTF-8 checks) every field before it, so reading seven
//! columns from one document used to walk it seven times. A document is split into its fields
//! once, and every filter, column and table of its collection reads from that.

use bson::{Bson, RawBsonRef, RawDocument};

/// The top-level fields of one raw document, in document order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    fields: Vec<(&'a str, RawBsonRef<'a>)>,
}

impl<'a> Fields<'a> {
    /// Splits `doc`. A field MongoDB sent in a form the bson crate cannot read ends the walk:
    /// it and the fields after it count as missing.
    pub fn of(doc: &'a RawDocument) -> Self {
        let fields = doc
            .iter()
            .map_while(Result::ok)
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        Fields { fields }
    }

    pub fn get(&self, name: &str) -> Option<RawBsonRef<'a>> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|&(_, v)| v)
    }

    /// The field, decoded.
    pub fn decoded(&self, name: &str) -> Option<Bson> {
        Bson::try_from(self.get(name)?).ok()
    }

    /// The field as a sub-document.
    pub fn document(&self, name: &str) -> Option<&'a RawDocument> {
        match self.get(name)? {
            RawBsonRef::Document(d) => Some(d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn fields_are_found_by_name_and_decoded() {
        let raw = crate::rows::raw(doc! {"a": 1, "b": {"c": "x"}, "s": "t"});
        let f = Fields::of(&raw);
        assert_eq!(f.decoded("a"), Some(Bson::Int32(1)));
        assert_eq!(f.decoded("s"), Some(Bson::String("t".into())));
        assert_eq!(f.document("b").map(|d| d.get_str("c").unwrap()), Some("x"));
        assert!(f.get("missing").is_none() && f.document("a").is_none());
    }
}
