//! One link and its owner: the fields a hit answers from and a click event carries, in one
//! allocation per link, and the keys the table's sets index links by.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use http::StatusCode;

/// The owner of a link, as click events report it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Workspace {
    /// `route.creator.workspace.id`
    pub id: Arc<str>,
    /// `route.creator.workspace.name`
    pub name: Arc<str>,
}

/// What links of the same domain, creator and workspace share (interned at load).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// `route.domain.raw`: the lower-case custom domain.
    pub domain: Arc<str>,
    /// `route.domain.id`
    pub domain_id: Arc<str>,
    /// `route.creator.id`
    pub creator_id: Arc<str>,
    /// `route.creator.workspace`
    pub workspace: Arc<Workspace>,
    /// The fields above as the event's `route` has them ([`crate::json::owner_json`]).
    json: Box<[u8]>,
}

impl Owner {
    /// An owner, with its part of the event's JSON.
    pub fn new(domain: Arc<str>, domain_id: Arc<str>, creator_id: Arc<str>, workspace: Arc<Workspace>) -> Owner {
        let json = crate::json::owner_json(&domain, &domain_id, &creator_id, &workspace.id, &workspace.name);
        Owner {
            domain,
            domain_id,
            creator_id,
            workspace,
            json,
        }
    }
}

/// One branded short link, ready to answer; cloning it is a reference count.
///
/// Kept small, since a table holds millions, and laid out for the redirect: the reference
/// count, the fields below, then the slashtag, the destination and the id, in one allocation,
/// so a lookup that compares the slashtag reads the link's fields and its `Location` bytes from
/// the same few cache lines. (With the text in a separate allocation, a lookup in a large table
/// waited for one more cache miss: a quarter of its time under load.) What many links have in
/// common is one shared [`Owner`].
#[derive(Debug, Clone)]
pub struct Link(triomphe::Arc<triomphe::HeaderSlice<LinkFields, str>>);

/// The fixed part of a [`Link`] (reached through it).
#[derive(Debug)]
pub struct LinkFields {
    /// Where the destination starts in the text.
    slashtag_len: u32,
    /// Where the id starts in the text.
    id_start: u32,
    /// Redirect status (the link's, else its domain's, else 301).
    pub status: StatusCode,
    /// Domain, creator and workspace.
    pub owner: Arc<Owner>,
    /// `route.destination` as JSON, made by the pipeline thread at the link's first click:
    /// parsing the URL costs more than the rest of the event, and links are clicked again and
    /// again. Lazily, so a table of millions of links pays only for those that are clicked.
    destination_json: OnceLock<Arc<str>>,
}

impl std::ops::Deref for Link {
    type Target = LinkFields;

    fn deref(&self) -> &LinkFields {
        &self.0.header
    }
}

impl Link {
    /// A link. `location` is sent as the `Location` field as it is, so it must be one: visible
    /// ASCII (the table reader gives the `url` crate's serialization); any other is replaced by
    /// `/`.
    /// Parts longer than 1 GiB are cut, so that the offsets fit `u32` (the table reader never
    /// makes one).
    pub fn new(id: &str, slashtag: &str, status: StatusCode, location: &str, owner: Arc<Owner>) -> Link {
        let location = if is_field_value(location) { location } else { "/" };
        let (id, slashtag, location) = (cut(id), cut(slashtag), cut(location));
        let fields = LinkFields {
            slashtag_len: slashtag.len() as u32,
            id_start: (slashtag.len() + location.len()) as u32,
            status,
            owner,
            destination_json: OnceLock::new(),
        };
        Link(triomphe::Arc::from_header_and_str(
            fields,
            &[slashtag, location, id].concat(),
        ))
    }

    fn text(&self) -> &str {
        &self.0.slice
    }

    /// `route.id`
    pub fn id(&self) -> &str {
        &self.text()[self.id_start as usize..]
    }

    /// `route.slashtag`, exactly as in the table.
    pub fn slashtag(&self) -> &str {
        &self.text()[..self.slashtag_len as usize]
    }

    /// The destination URL as sent in `Location`: the `url` crate's serialization of the
    /// table's text (host lower-cased and in punycode, the rest percent-encoded).
    pub fn destination(&self) -> &str {
        &self.text()[self.slashtag_len as usize..self.id_start as usize]
    }

    /// `route.domain.raw`: the lower-case custom domain.
    pub fn domain(&self) -> &Arc<str> {
        &self.owner.domain
    }

    /// `route.domain.id`
    pub fn domain_id(&self) -> &str {
        &self.owner.domain_id
    }

    /// `route.creator.id`
    pub fn creator_id(&self) -> &str {
        &self.owner.creator_id
    }

    /// `route.creator.workspace`
    pub fn workspace(&self) -> &Workspace {
        &self.owner.workspace
    }

    /// `route.creator` and `route.domain` as JSON ([`crate::json::owner_json`]).
    pub fn owner_json(&self) -> &[u8] {
        &self.owner.json
    }

    /// `route.destination` of this link's clicks as JSON ([`crate::json::destination_json`]),
    /// made at the first call and kept.
    pub fn destination_json(&self) -> Arc<str> {
        Arc::clone(
            self.destination_json
                .get_or_init(|| crate::json::destination_json(self.destination())),
        )
    }
}

/// `s` cut to at most a quarter of 4 GiB, so that three such fit `u32` offsets.
pub(super) fn cut(s: &str) -> &str {
    &s[..s.floor_char_boundary(u32::MAX as usize / 4)]
}

/// A value that can be written into a response head as it is: visible ASCII and spaces, not
/// empty. (`HeaderValue` also takes bytes above 0x7f, which no URL this server sends has.)
pub fn is_field_value(s: &str) -> bool {
    !s.is_empty() && crate::json::is_visible_ascii(s.as_bytes())
}

/// A set entry keyed by the link's slashtag, so the slashtag is stored once.
#[derive(Debug, Clone)]
pub(super) struct BySlashtag(pub(super) Link);

impl PartialEq for BySlashtag {
    fn eq(&self, other: &Self) -> bool {
        self.0.slashtag() == other.0.slashtag()
    }
}
impl Eq for BySlashtag {}
impl Hash for BySlashtag {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like the `str` it borrows as.
        self.0.slashtag().hash(state)
    }
}
impl Borrow<str> for BySlashtag {
    fn borrow(&self) -> &str {
        self.0.slashtag()
    }
}

/// A set entry keyed by the link's id (to find duplicate ids while building), with its line.
#[derive(Debug)]
pub(super) struct ById(pub(super) Link, pub(super) u32);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}
impl Eq for ById {}
impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state)
    }
}
impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}
