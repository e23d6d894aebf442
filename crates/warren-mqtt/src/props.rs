//! [`Props`]: a packet's MQTT 5 properties, boxed, and nothing at all when
//! there are none.
//!
//! Why: a [`Properties`] is ~400 bytes (ten optional strings), and every 3.1.1
//! packet and most MQTT 5 ones have none. Inline, it made every `Packet` that
//! big, and moving packets through the decoder, the `Result`/`Option`/`Poll`
//! wrappers and the session cost ~17 % of the broker's CPU at QoS 1 (memmove);
//! it also made every outbound item, and every connection future holding a
//! packet, that big. Boxed, a packet without properties is a null pointer.
//!
//! Reads go through `Deref` (an absent list reads as the empty one); the first
//! write through `DerefMut` allocates.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::properties::Properties;

#[derive(Clone, Default)]
pub struct Props(Option<Box<Properties>>);

/// What an absent property list reads as.
static EMPTY: Properties = Properties::EMPTY;

impl Props {
    pub const NONE: Props = Props(None);

    /// The list, or None when it is empty (no allocation either way).
    pub fn into_inner(self) -> Properties {
        self.0.map(|b| *b).unwrap_or_default()
    }
}

impl From<Properties> for Props {
    fn from(p: Properties) -> Props {
        if p.is_empty() {
            Props(None)
        } else {
            Props(Some(Box::new(p)))
        }
    }
}

impl Deref for Props {
    type Target = Properties;
    fn deref(&self) -> &Properties {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl DerefMut for Props {
    fn deref_mut(&mut self) -> &mut Properties {
        self.0.get_or_insert_with(Default::default)
    }
}

/// By content: a list boxed and emptied again equals an absent one.
impl PartialEq for Props {
    fn eq(&self, other: &Props) -> bool {
        **self == **other
    }
}

impl Eq for Props {}

impl fmt::Debug for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
