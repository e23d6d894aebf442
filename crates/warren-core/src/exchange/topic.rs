//! Topic exchange routing: a trie of binding patterns.
//!
//! A topic binding pattern is a list of words separated by `.`, where the word `*`
//! matches exactly one word of the routing key and `#` matches zero or more words.
//! Matching every binding in turn costs time proportional to the number of
//! bindings, and an exchange with 100k bindings (one per device, per user, ...)
//! would pay that on every publish. Instead the patterns are stored in a trie whose
//! edges are pattern words, like RabbitMQ's `rabbit_topic_trie_node`/`_edge` tables:
//! routing walks only the branches that can still match the key, so the cost
//! depends on how many patterns share prefixes with the key, not on how many
//! bindings the exchange has.
//!
//! # Words
//!
//! Keys and patterns are split on `.`, and empty words are words: `a..b` has three
//! words and `a.` has two. The one exception is the empty string, which has *no*
//! words: RabbitMQ 3.10 routes the empty key to the pattern `#` and to the empty
//! pattern, but not to `*` or `#.*`. The `OBSERVED` table in the tests is what RabbitMQ did for
//! 35 patterns and 21 keys.
//!
//! # Layout
//!
//! Nodes live in one arena (`Vec<Node>`) and refer to each other by `u32` index, and
//! the literal-word edges of *all* nodes live in one `HashMap` keyed by
//! `(parent, word)`. Compared with a `Box` tree with a map in every node this keeps
//! a node at 40 bytes (a leaf pays nothing for an empty child map), drops never
//! recurse (a pattern can have thousands of words when it comes from a protocol
//! with long topic names), and `*`/`#` children are plain fields, so the common
//! wildcard steps cost no hashing at all. Hashing the key's words is most of what
//! a route costs, so each word is hashed once per route however many nodes it is
//! looked up under (see `word_hash`).
//!
//! # Routing cost
//!
//! A naive depth-first match is exponential in the worst case: a `#` can stop after
//! any word, so `#.a.#.a.#.a.#` against `a.a.a.….a` has a number of paths that is a
//! binomial coefficient of the key length. Routing here never processes the same
//! (node, key position) pair twice: a `#` node entered at position `p` covers every
//! position from `p` to the end, so each `#` node remembers the smallest position it
//! was entered at during this route and later entries only do the part not yet
//! covered. The cost is then bounded by (nodes reached) x (words in the key), and
//! each binding is reported at most once per route.
//!
//! Routing runs from an explicit task stack rather than recursion (deep patterns
//! cannot overflow the thread's stack) and keeps that stack and the `#` bookkeeping
//! in fixed arrays on the stack, spilling to the heap only for unusually deep or
//! wide matches, so a publish normally allocates nothing here.

use std::borrow::Borrow;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::OnceLock;

/// Index of a node in [`TopicTrie::nodes`].
type NodeId = u32;

/// "No such child" in [`Node::star`]/[`Node::hash`], and the root's parent.
const NONE: NodeId = u32::MAX;

/// The parent of a node slot that is on the free list.
const FREE: NodeId = u32::MAX - 1;

/// The root: the node for the empty pattern (zero words).
const ROOT: NodeId = 0;

/// One position in the trie: the bindings whose pattern ends exactly here and the
/// wildcard children. Literal children are in [`TopicTrie::edges`].
struct Node<D> {
    /// Destinations bound with the pattern that leads to this node.
    dests: Vec<D>,
    /// Child for the word `*`, or [`NONE`].
    star: NodeId,
    /// Child for the word `#`, or [`NONE`].
    hash: NodeId,
    /// Parent node, so unbinding can prune upward; [`NONE`] for the root and
    /// [`FREE`] for a slot on the free list.
    parent: NodeId,
    /// How many literal edges leave this node. Lets pruning know whether the node is
    /// empty, and lets routing skip the hash lookup when there are none.
    literals: u32,
}

impl<D> Node<D> {
    fn new(parent: NodeId) -> Self {
        Node {
            dests: Vec::new(),
            star: NONE,
            hash: NONE,
            parent,
            literals: 0,
        }
    }

    /// A node with no bindings and no children serves no pattern and can go.
    fn is_empty(&self) -> bool {
        self.dests.is_empty() && self.star == NONE && self.hash == NONE && self.literals == 0
    }
}

/// The key of a literal edge: `word` leads from `parent` to the map's value.
#[derive(Debug)]
struct EdgeKey {
    parent: NodeId,
    word: Box<[u8]>,
}

/// The keyed hash of a word (SipHash with a per-process random key, because
/// clients choose both the words bound and the words published, and colliding
/// words would otherwise degrade the map).
///
/// Edge keys hash as this word hash mixed with the parent id, rather than hashing
/// (parent, word) whole, so a route hashes each word of the routing key once even
/// when it looks that word up under several nodes (`*` siblings, each position of
/// a `#`): SipHash is most of the cost of a route.
fn word_hash(word: &[u8]) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    // One `write`, no length prefix: SipHash already mixes in the total length.
    let mut h = KEYS.get_or_init(RandomState::new).build_hasher();
    h.write(word);
    h.finish()
}

/// A view of an edge key, owned ([`EdgeKey`]) or borrowed ([`Probe`]).
///
/// The map is keyed by the owned form, but routing must look edges up by a word
/// borrowed from the routing key without building an `EdgeKey` (that would
/// allocate per word). `HashMap::get` accepts any `Q` the key type `Borrow`s as,
/// so both forms are made to borrow as this trait object, whose `Hash`/`Eq` only
/// look at the parts.
trait EdgeRef {
    fn parent(&self) -> NodeId;
    fn word(&self) -> &[u8];
    fn word_hash(&self) -> u64;
}

impl EdgeRef for EdgeKey {
    fn parent(&self) -> NodeId {
        self.parent
    }
    fn word(&self) -> &[u8] {
        &self.word
    }
    /// Recomputed rather than stored: only inserts, removals and rehashes need it,
    /// and storing it would cost 8 bytes per edge.
    fn word_hash(&self) -> u64 {
        word_hash(&self.word)
    }
}

/// A lookup key: a word borrowed from a pattern or routing key, with its hash.
struct Probe<'a> {
    parent: NodeId,
    word: &'a [u8],
    hash: u64,
}

impl<'a> Probe<'a> {
    fn new(parent: NodeId, word: &'a [u8]) -> Self {
        Probe {
            parent,
            word,
            hash: word_hash(word),
        }
    }
}

impl EdgeRef for Probe<'_> {
    fn parent(&self) -> NodeId {
        self.parent
    }
    fn word(&self) -> &[u8] {
        self.word
    }
    fn word_hash(&self) -> u64 {
        self.hash
    }
}

impl<'a> Borrow<dyn EdgeRef + 'a> for EdgeKey {
    fn borrow(&self) -> &(dyn EdgeRef + 'a) {
        self
    }
}

impl Hash for dyn EdgeRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Multiplying by an odd constant is a bijection, so one word under two
        // parents never gets the same input.
        let parent = u64::from(self.parent()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        state.write_u64(self.word_hash() ^ parent);
    }
}

impl PartialEq for dyn EdgeRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parent() == other.parent() && self.word() == other.word()
    }
}

impl Eq for dyn EdgeRef + '_ {}

// The owned key must hash and compare exactly like its borrowed view.
impl Hash for EdgeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn EdgeRef).hash(state)
    }
}

impl PartialEq for EdgeKey {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn EdgeRef) == (other as &dyn EdgeRef)
    }
}

impl Eq for EdgeKey {}

/// The edge map's hasher. Its input is already a keyed hash (see [`word_hash`]),
/// so it only needs to spread the bits: the map uses both the top and bottom bits.
#[derive(Default)]
struct EdgeHasher(u64);

impl Hasher for EdgeHasher {
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    /// Not used by edge keys (they write one `u64`); FNV-style for completeness.
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// MurmurHash3's 64-bit finaliser.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type EdgeMap = HashMap<EdgeKey, NodeId, BuildHasherDefault<EdgeHasher>>;

/// Topic bindings from patterns (`*` one word, `#` zero or more words) to
/// destinations, stored as a trie so routing cost does not grow with the number of
/// bindings that cannot match.
pub struct TopicTrie<D> {
    /// Node arena; index 0 is the root. Freed slots are listed in `free`.
    nodes: Vec<Node<D>>,
    /// Unused slots of `nodes`, reused before the arena grows.
    free: Vec<NodeId>,
    /// Literal edges of every node.
    edges: EdgeMap,
    /// Number of (pattern, destination) bindings.
    len: usize,
}

impl<D> Default for TopicTrie<D> {
    fn default() -> Self {
        TopicTrie {
            nodes: vec![Node::new(NONE)],
            free: Vec::new(),
            edges: HashMap::default(),
            len: 0,
        }
    }
}

/// Shows the bindings as `pattern => destination` pairs, not the internal arena.
impl<D: fmt::Debug> fmt::Debug for TopicTrie<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (pattern, dest) in self.bindings() {
            map.entry(&String::from_utf8_lossy(&pattern), dest);
        }
        map.finish()
    }
}

/// The words of a pattern. The empty string has no words (see the module docs);
/// anything else is split on every `.`.
fn words(s: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    (!s.is_empty())
        .then(|| s.split(|b| *b == b'.'))
        .into_iter()
        .flatten()
}

/// The word of `key` that starts at byte `pos`, and the position of the word after
/// it; `None` when no words remain.
///
/// Positions are byte offsets so routing never materialises a list of words. After
/// the last word the position is `key.len() + 1`, which is distinct from
/// `key.len()`: the latter is the start of an empty last word (key `a.`).
#[inline]
fn word_at(key: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = key.get(pos..)?;
    Some(match rest.iter().position(|b| *b == b'.') {
        Some(i) => (&rest[..i], pos + i + 1),
        None => (rest, key.len() + 1),
    })
}

/// A unit of routing work.
#[derive(Clone, Copy)]
enum Task {
    /// The pattern so far (ending at a node that is not reached through `#`, or at
    /// the root) has consumed the key up to this position.
    Visit(NodeId, usize),
    /// The `#` node has consumed the key up to `.1`, and must still be tried at
    /// every later word start before `.2` (exclusive).
    Span(NodeId, usize, usize),
}

/// A LIFO stack that lives in an array and only allocates when it outgrows it.
struct Stack<T: Copy, const N: usize> {
    inline: [T; N],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy, const N: usize> Stack<T, N> {
    fn new(filler: T) -> Self {
        Stack {
            inline: [filler; N],
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, t: T) {
        if self.len < N {
            self.inline[self.len] = t;
            self.len += 1;
        } else {
            self.spill.push(t);
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<T> {
        if let Some(t) = self.spill.pop() {
            return Some(t);
        }
        self.len = self.len.checked_sub(1)?;
        Some(self.inline[self.len])
    }
}

/// For each `#` node entered during one route, the smallest key position it was
/// entered at. Small and linear-searched: a route rarely enters more than a few
/// `#` nodes; past that a map keeps it linear overall.
struct HashEntries {
    inline: [(NodeId, usize); 8],
    len: usize,
    spill: Option<HashMap<NodeId, usize>>,
}

impl HashEntries {
    fn new() -> Self {
        HashEntries {
            inline: [(NONE, 0); 8],
            len: 0,
            spill: None,
        }
    }

    /// Record that `node` is entered at `pos`; returns the exclusive end of the
    /// positions it still has to try (`all` if it was never entered), or `None`
    /// when an earlier entry at or before `pos` already covered everything.
    #[inline]
    fn enter(&mut self, node: NodeId, pos: usize, all: usize) -> Option<usize> {
        let slot = if let Some(i) = self.inline[..self.len].iter().position(|e| e.0 == node) {
            &mut self.inline[i].1
        } else if self.len < self.inline.len() {
            self.inline[self.len] = (node, pos);
            self.len += 1;
            return Some(all);
        } else {
            match self.spill.get_or_insert_with(HashMap::new).entry(node) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    e.insert(pos);
                    return Some(all);
                }
            }
        };
        if *slot <= pos {
            None
        } else {
            Some(std::mem::replace(slot, pos))
        }
    }
}

/// Hashes of the routing key's words by position, so a word looked up under
/// several nodes is hashed once. Direct-mapped on the byte position: a clash
/// just means hashing again.
struct WordHashes {
    slots: [(usize, u64); 16],
}

impl WordHashes {
    #[inline]
    fn get(&mut self, pos: usize, word: &[u8]) -> u64 {
        let slot = &mut self.slots[pos % 16];
        if slot.0 != pos {
            *slot = (pos, word_hash(word));
        }
        slot.1
    }
}

/// One route's working memory, all on the thread's stack (see the module docs).
struct Scratch {
    tasks: Stack<Task, 32>,
    hashes: HashEntries,
    words: WordHashes,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            tasks: Stack::new(Task::Visit(ROOT, 0)),
            hashes: HashEntries::new(),
            // No real position is usize::MAX (positions are at most len + 1).
            words: WordHashes {
                slots: [(usize::MAX, 0); 16],
            },
        }
    }
}

impl<D: PartialEq> TopicTrie<D> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a binding; returns false if this exact (pattern, dest) was already bound.
    ///
    /// `#.#` and `#` are different bindings (as in RabbitMQ, where unbinding one
    /// leaves the other) even though they match the same keys, so patterns are
    /// stored as written, not normalised.
    pub fn bind(&mut self, pattern: &[u8], dest: D) -> bool {
        let mut node = ROOT;
        for word in words(pattern) {
            node = self.child_or_insert(node, word);
        }
        let dests = &mut self.nodes[node as usize].dests;
        if dests.contains(&dest) {
            return false;
        }
        // Most patterns have one or two destinations; don't let the first push
        // reserve room for four.
        if dests.len() < 4 {
            dests.reserve_exact(1);
        }
        dests.push(dest);
        self.len += 1;
        true
    }

    /// Remove a binding; returns false if it did not exist. Nodes left serving no
    /// pattern are removed, so a trie that had 100k bindings and now has none is
    /// back to its initial size.
    pub fn unbind(&mut self, pattern: &[u8], dest: &D) -> bool {
        let Some(node) = self.find(pattern) else {
            return false;
        };
        let dests = &mut self.nodes[node as usize].dests;
        let Some(i) = dests.iter().position(|d| d == dest) else {
            return false;
        };
        dests.swap_remove(i);
        shrink(dests);
        self.len -= 1;

        // Walk back up, removing nodes that became empty. The pattern's words read
        // backwards label the edges on the way up.
        let mut labels = words(pattern).rev();
        let mut node = node;
        while node != ROOT && self.nodes[node as usize].is_empty() {
            let Some(word) = labels.next() else { break };
            let parent = self.nodes[node as usize].parent;
            let p = &mut self.nodes[parent as usize];
            if p.star == node {
                p.star = NONE;
            } else if p.hash == node {
                p.hash = NONE;
            } else {
                p.literals -= 1;
                self.edges.remove(&Probe::new(parent, word) as &dyn EdgeRef);
            }
            self.release(node);
            node = parent;
        }
        self.maybe_compact();
        true
    }

    /// Remove every binding to `dest` (its queue or exchange was deleted); returns
    /// how many were removed. Visits every node: the trie is indexed by pattern,
    /// not by destination.
    pub fn unbind_all(&mut self, dest: &D) -> usize {
        let mut removed = 0;
        let mut emptied = Vec::new();
        for (id, node) in self.nodes.iter_mut().enumerate() {
            let before = node.dests.len();
            if before == 0 {
                continue;
            }
            node.dests.retain(|d| d != dest);
            if node.dests.len() != before {
                removed += before - node.dests.len();
                shrink(&mut node.dests);
                if id != ROOT as usize && node.is_empty() {
                    emptied.push(id as NodeId);
                }
            }
        }
        if removed == 0 {
            return 0;
        }
        self.len -= removed;

        // Prune bottom-up. Star and hash links are cleared as we go; literal edges
        // are keyed by their word, which a node doesn't store, so those are swept
        // from the edge map in one pass at the end.
        let mut literal_removed = false;
        while let Some(node) = emptied.pop() {
            let parent = self.nodes[node as usize].parent;
            let p = &mut self.nodes[parent as usize];
            if p.star == node {
                p.star = NONE;
            } else if p.hash == node {
                p.hash = NONE;
            } else {
                p.literals -= 1;
                literal_removed = true;
            }
            if parent != ROOT && p.is_empty() {
                emptied.push(parent);
            }
            self.release(node);
        }
        if literal_removed {
            let nodes = &self.nodes;
            self.edges
                .retain(|_, child| nodes[*child as usize].parent != FREE);
        }
        self.maybe_compact();
        removed
    }

    /// Call `f` once for each binding whose pattern matches `key`. Each binding is
    /// reported at most once, but a destination bound with several matching
    /// patterns is reported once per pattern; callers dedupe.
    pub fn route(&self, key: &[u8], mut f: impl FnMut(&D)) {
        if self.len == 0 {
            return;
        }
        let end = key.len() + 1;
        let start = if key.is_empty() { end } else { 0 };
        let mut scratch = Scratch::new();
        scratch.tasks.push(Task::Visit(ROOT, start));
        while let Some(task) = scratch.tasks.pop() {
            match task {
                Task::Visit(node, pos) => {
                    self.step(node, key, pos, &mut scratch, &mut f);
                    let hash = self.nodes[node as usize].hash;
                    if hash != NONE {
                        self.enter_hash(hash, pos, end, &mut scratch, &mut f);
                    }
                }
                Task::Span(node, pos, stop) => {
                    if let Some(next) = self.step(node, key, pos, &mut scratch, &mut f) {
                        if next < stop {
                            scratch.tasks.push(Task::Span(node, next, stop));
                        }
                    }
                }
            }
        }
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The child of `node` for `word`, created if missing.
    fn child_or_insert(&mut self, node: NodeId, word: &[u8]) -> NodeId {
        let existing = match word {
            b"*" => self.nodes[node as usize].star,
            b"#" => self.nodes[node as usize].hash,
            _ => self.literal(node, word).unwrap_or(NONE),
        };
        if existing != NONE {
            return existing;
        }
        let child = self.alloc(node);
        let n = &mut self.nodes[node as usize];
        match word {
            b"*" => n.star = child,
            b"#" => n.hash = child,
            _ => {
                n.literals += 1;
                let key = EdgeKey {
                    parent: node,
                    word: word.into(),
                };
                self.edges.insert(key, child);
            }
        }
        child
    }

    /// The node for `pattern`, if some binding's pattern passes through it.
    fn find(&self, pattern: &[u8]) -> Option<NodeId> {
        let mut node = ROOT;
        for word in words(pattern) {
            let n = &self.nodes[node as usize];
            node = match word {
                b"*" => n.star,
                b"#" => n.hash,
                _ => self.literal(node, word)?,
            };
            if node == NONE {
                return None;
            }
        }
        Some(node)
    }

    #[inline]
    fn literal(&self, node: NodeId, word: &[u8]) -> Option<NodeId> {
        if self.nodes[node as usize].literals == 0 {
            return None;
        }
        self.edges
            .get(&Probe::new(node, word) as &dyn EdgeRef)
            .copied()
    }

    /// Match one key position at `node` without following its `#` child: report
    /// the node's bindings if the key is used up, otherwise queue the children the
    /// next word leads to. Returns the position after the word, if there was one.
    #[inline]
    fn step(
        &self,
        node: NodeId,
        key: &[u8],
        pos: usize,
        scratch: &mut Scratch,
        f: &mut impl FnMut(&D),
    ) -> Option<usize> {
        let n = &self.nodes[node as usize];
        let Some((word, next)) = word_at(key, pos) else {
            n.dests.iter().for_each(f);
            return None;
        };
        if n.literals > 0 {
            let probe = Probe {
                parent: node,
                word,
                hash: scratch.words.get(pos, word),
            };
            if let Some(child) = self.edges.get(&probe as &dyn EdgeRef) {
                scratch.tasks.push(Task::Visit(*child, next));
            }
        }
        if n.star != NONE {
            scratch.tasks.push(Task::Visit(n.star, next));
        }
        Some(next)
    }

    /// Enter the `#` node `hash` (and any `#` children it has in turn, since
    /// `#.#` behaves like `#`) at key position `pos`, queueing only the positions no
    /// earlier entry covered.
    fn enter_hash(
        &self,
        mut hash: NodeId,
        pos: usize,
        end: usize,
        scratch: &mut Scratch,
        f: &mut impl FnMut(&D),
    ) {
        while hash != NONE {
            let Some(stop) = scratch.hashes.enter(hash, pos, end + 1) else {
                // Covered, and so is the `#` chain below it (entered alongside).
                return;
            };
            let n = &self.nodes[hash as usize];
            if n.literals == 0 && n.star == NONE {
                // Only bindings (`server7.#`): the words in between can't lead
                // anywhere, so skip straight to the end of the key.
                if stop > end {
                    n.dests.iter().for_each(&mut *f);
                }
            } else {
                scratch.tasks.push(Task::Span(hash, pos, stop));
            }
            hash = n.hash;
        }
    }

    fn alloc(&mut self, parent: NodeId) -> NodeId {
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = Node::new(parent);
            return id;
        }
        let id = self.nodes.len();
        // Each node costs 40 bytes, so this needs ~170 GB of bindings first; treat
        // it like Vec's own capacity overflow.
        assert!(id < FREE as usize, "topic trie node limit reached");
        self.nodes.push(Node::new(parent));
        id as NodeId
    }

    fn release(&mut self, node: NodeId) {
        let n = &mut self.nodes[node as usize];
        *n = Node::new(FREE);
        self.free.push(node);
    }

    /// Give memory back after mass unbinding. Freed slots are reused by later
    /// binds, but if most of the arena is free, renumber the live nodes into a
    /// right-sized arena. Renumbering costs O(nodes) and happens only after the
    /// free slots have come to outnumber live ones 3 to 1, so it's amortised over
    /// the unbinds that freed them.
    fn maybe_compact(&mut self) {
        let free = self.free.len();
        if free >= 64 && free * 4 >= self.nodes.len() * 3 {
            self.compact();
        }
        if self.edges.capacity() > 64 && self.edges.len() * 4 < self.edges.capacity() {
            self.edges.shrink_to_fit();
        }
    }

    fn compact(&mut self) {
        let mut remap = vec![NONE; self.nodes.len()];
        let mut live = 0;
        for (old, node) in self.nodes.iter().enumerate() {
            if node.parent != FREE {
                remap[old] = live;
                live += 1;
            }
        }
        let map = |id: NodeId| if id == NONE { NONE } else { remap[id as usize] };
        let old_nodes = std::mem::take(&mut self.nodes);
        let mut nodes = Vec::with_capacity(live as usize);
        for mut node in old_nodes.into_iter().filter(|n| n.parent != FREE) {
            node.star = map(node.star);
            node.hash = map(node.hash);
            node.parent = map(node.parent);
            nodes.push(node);
        }
        self.nodes = nodes;
        self.free = Vec::new();
        let old_edges = std::mem::take(&mut self.edges);
        let mut edges = EdgeMap::with_capacity_and_hasher(old_edges.len(), Default::default());
        for (mut key, child) in old_edges {
            key.parent = map(key.parent);
            edges.insert(key, map(child));
        }
        self.edges = edges;
    }
}

impl<D> TopicTrie<D> {
    /// Every binding as (pattern, destination), rebuilt from the trie. For `Debug`
    /// and tests; not a hot path.
    fn bindings(&self) -> Vec<(Vec<u8>, &D)> {
        let labels: HashMap<NodeId, &[u8]> = self
            .edges
            .iter()
            .map(|(k, child)| (*child, &*k.word))
            .collect();
        let mut out = Vec::new();
        for (id, node) in self.nodes.iter().enumerate() {
            if node.dests.is_empty() {
                continue;
            }
            let mut path: Vec<&[u8]> = Vec::new();
            let mut cur = id as NodeId;
            while cur != ROOT {
                let parent = self.nodes[cur as usize].parent;
                let p = &self.nodes[parent as usize];
                path.push(if p.star == cur {
                    b"*"
                } else if p.hash == cur {
                    b"#"
                } else {
                    labels.get(&cur).copied().unwrap_or(b"?")
                });
                cur = parent;
            }
            path.reverse();
            let pattern = path.join(&b'.');
            out.extend(node.dests.iter().map(|d| (pattern.clone(), d)));
        }
        out
    }
}

/// Release a destination list's spare room once it has shrunk well below it.
fn shrink<D>(dests: &mut Vec<D>) {
    if dests.is_empty() {
        *dests = Vec::new();
    } else if dests.capacity() > 4 && dests.len() * 4 <= dests.capacity() {
        dests.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(t: &TopicTrie<u32>, key: &str) -> Vec<u32> {
        let mut v = Vec::new();
        t.route(key.as_bytes(), |d| v.push(*d));
        v.sort_unstable();
        v
    }

    fn one(pattern: &str, key: &str) -> bool {
        let mut t = TopicTrie::new();
        t.bind(pattern.as_bytes(), 1u32);
        !routed(&t, key).is_empty()
    }

    /// Simple reference: match word lists recursively (exponential in the worst
    /// case, fine for the small random inputs used here). Empty string = no words.
    fn reference(pattern: &str, key: &str) -> bool {
        fn split(s: &str) -> Vec<&str> {
            if s.is_empty() {
                Vec::new()
            } else {
                s.split('.').collect()
            }
        }
        fn m(p: &[&str], k: &[&str]) -> bool {
            match p.split_first() {
                None => k.is_empty(),
                Some((&"#", rest)) => (0..=k.len()).any(|i| m(rest, &k[i..])),
                Some((w, rest)) => !k.is_empty() && (*w == "*" || *w == k[0]) && m(rest, &k[1..]),
            }
        }
        m(&split(pattern), &split(key))
    }

    // What RabbitMQ 3.10.x routed: each pattern bound to its own queue, each key
    // published once (probe with pika; see the module docs).
    const KEYS: &[&str] = &[
        "", ".", "a", "b", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c",
        "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "x", "a.x.y", "...",
    ];
    #[rustfmt::skip]
    const OBSERVED: &[(&str, &[&str])] = &[
        ("#", &["", ".", "a", "b", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "x", "a.x.y", "..."]),
        ("*", &["a", "b", "x"]),
        ("", &[""]),
        ("a", &["a"]),
        ("a.#", &["a", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "a.b.c", "a.b.b", "a.b.a", "a.x.y"]),
        ("#.a", &["a", "a.a", ".a", "b.a", "a.b.a"]),
        ("a.*", &["a.b", "a.a", "a."]),
        ("*.a", &["a.a", ".a", "b.a"]),
        ("a.*.b", &["a..b", "a.x.b", "a.b.b"]),
        ("a.#.b", &["a.b", "a..b", "a.x.b", "a.x.y.b", "a.b.b"]),
        ("#.#", &["", ".", "a", "b", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "x", "a.x.y", "..."]),
        ("#.*", &[".", "a", "b", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "x", "a.x.y", "..."]),
        ("*.#", &[".", "a", "b", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "x", "a.x.y", "..."]),
        ("a.#.#.b", &["a.b", "a..b", "a.x.b", "a.x.y.b", "a.b.b"]),
        (".", &["."]),
        ("a.", &["a."]),
        (".a", &[".a"]),
        ("*.*", &[".", "a.b", "a.a", "a.", ".a", "b.a", "x.y"]),
        ("#.a.#", &["a", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "a.x.y"]),
        ("a..b", &["a..b"]),
        ("a.*.*", &["a..b", "a.x.b", "a.b.c", "a.b.b", "a.b.a", "a.x.y"]),
        ("#.#.#", &["", ".", "a", "b", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "x", "a.x.y", "..."]),
        ("*.*.#", &[".", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "a.x.y", "..."]),
        ("a.b.#.#", &["a.b", "a.b.c", "a.b.b", "a.b.a"]),
        ("#.b.#", &["b", "a.b", "a..b", "a.x.b", "a.x.y.b", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a"]),
        ("#.b", &["b", "a.b", "a..b", "a.x.b", "a.x.y.b", "x.a.b", "a.b.b"]),
        ("*.b.#", &["a.b", "a.b.c", "a.b.b", "a.b.a"]),
        ("#..#", &[".", "a..b", "a.", "..", ".a", "..."]),
        ("*.", &[".", "a."]),
        ("#.", &[".", "a.", "..", "..."]),
        ("..", &[".."]),
        ("#.*.#", &[".", "a", "b", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "x", "a.x.y", "..."]),
        ("*.#.*", &[".", "a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "..", ".a", "a.b.c", "b.a", "x.a.b", "a.b.b", "a.b.a", "x.y", "a.x.y", "..."]),
        ("a.#.*", &["a.b", "a.a", "a..b", "a.x.b", "a.x.y.b", "a.", "a.b.c", "a.b.b", "a.b.a", "a.x.y"]),
        ("#.*.b", &["a.b", "a..b", "a.x.b", "a.x.y.b", "x.a.b", "a.b.b"]),
    ];

    #[test]
    fn matches_what_rabbitmq_routed() {
        // All patterns in one trie, so shared prefixes are exercised too.
        let mut t = TopicTrie::new();
        for (i, (p, _)) in OBSERVED.iter().enumerate() {
            assert!(t.bind(p.as_bytes(), i as u32));
        }
        for key in KEYS {
            let want: Vec<u32> = OBSERVED
                .iter()
                .enumerate()
                .filter(|(_, (_, keys))| keys.contains(key))
                .map(|(i, _)| i as u32)
                .collect();
            assert_eq!(routed(&t, key), want, "key {key:?}");
            // The reference agrees with RabbitMQ too, so the random test below
            // checks against the right thing.
            for (p, keys) in OBSERVED {
                assert_eq!(reference(p, key), keys.contains(key), "{p:?} {key:?}");
            }
        }
    }

    #[test]
    fn star_matches_exactly_one_word() {
        assert!(one("a.*", "a.b"));
        assert!(!one("a.*", "a"));
        assert!(!one("a.*", "a.b.c"));
        assert!(one("a.*.b", "a..b"), "an empty word is a word");
        assert!(one("*", "x"));
        assert!(!one("*", ""), "the empty key has no words");
        assert!(one("*.*", "."));
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        assert!(one("a.#", "a"));
        assert!(one("a.#", "a.b.c.d"));
        assert!(one("#", ""));
        assert!(one("#", "a.b"));
        assert!(one("#.a", "a"));
        assert!(one("a.#.b", "a.b"));
        assert!(one("a.#.#.b", "a.x.y.z.b"));
        assert!(!one("#.*", ""));
        assert!(one("#.*", "a"));
        assert!(one("#.#", ""));
        assert!(!one("a.#", "b.a"));
    }

    #[test]
    fn literal_wildcard_lookalikes_are_literals() {
        assert!(one("a#", "a#"));
        assert!(!one("a#", "ab"));
        assert!(one("**", "**"));
        assert!(!one("**", "x"));
    }

    #[test]
    fn empty_pattern_matches_only_empty_key() {
        assert!(one("", ""));
        assert!(!one("", "."));
        assert!(!one("", "a"));
    }

    #[test]
    fn bind_and_unbind_report_existence() {
        let mut t = TopicTrie::new();
        assert!(t.bind(b"a.*", 1u32));
        assert!(!t.bind(b"a.*", 1), "same pattern and destination");
        assert!(t.bind(b"a.*", 2));
        assert!(t.bind(b"#", 1));
        assert!(t.bind(b"#.#", 1), "#.# is a distinct binding from #");
        assert_eq!(t.len(), 4);
        assert!(!t.unbind(b"a.b", &1), "never bound");
        assert!(!t.unbind(b"a.*", &3), "pattern exists, destination doesn't");
        assert!(t.unbind(b"#", &1));
        assert!(!t.unbind(b"#", &1), "already removed");
        assert_eq!(
            routed(&t, "a.x"),
            vec![1, 1, 2],
            "#.# and a.* both still match"
        );
        assert!(t.unbind(b"#.#", &1));
        assert_eq!(routed(&t, "a.x"), vec![1, 2]);
        assert_eq!(t.len(), 2);
        assert!(!t.is_empty());
    }

    #[test]
    fn each_binding_reported_once() {
        let mut t = TopicTrie::new();
        for p in ["#.#.#", "#.a.#", "#.*.#", "#"] {
            t.bind(p.as_bytes(), 7u32);
        }
        assert_eq!(routed(&t, "a.a.a.a.a"), vec![7, 7, 7, 7]);
    }

    #[test]
    fn unbinding_prunes_nodes_and_edges() {
        let mut t = TopicTrie::new();
        let patterns: Vec<String> = (0..1000)
            .map(|i| format!("s{}.{}.*.#.x{}", i % 10, i, i % 7))
            .collect();
        for p in &patterns {
            t.bind(p.as_bytes(), 1u32);
        }
        assert!(t.nodes.len() > 1000);
        for p in &patterns {
            assert!(t.unbind(p.as_bytes(), &1));
        }
        assert!(t.is_empty());
        assert_eq!(t.nodes.len() - t.free.len(), 1, "only the root is live");
        assert!(t.edges.is_empty());
        assert!(t.nodes.len() < 64, "arena compacted, got {}", t.nodes.len());
        // Still usable after compaction.
        t.bind(b"a.#", 2);
        assert_eq!(routed(&t, "a.b"), vec![2]);
    }

    #[test]
    fn partial_unbind_keeps_shared_prefixes() {
        let mut t = TopicTrie::new();
        t.bind(b"a.b.c", 1u32);
        t.bind(b"a.b", 2);
        t.bind(b"a.*.c", 3);
        assert!(t.unbind(b"a.b.c", &1));
        assert_eq!(routed(&t, "a.b"), vec![2]);
        assert_eq!(routed(&t, "a.b.c"), vec![3]);
        assert!(t.unbind(b"a.b", &2));
        assert_eq!(routed(&t, "a.b.c"), vec![3]);
        assert_eq!(t.nodes.len() - t.free.len(), 4, "root, a, *, c");
        assert_eq!(t.edges.len(), 2, "a and c");
    }

    #[test]
    fn unbind_all_removes_only_that_destination() {
        let mut t = TopicTrie::new();
        for p in ["a.#", "a.b", "#", "", "x.*.y", "x.*.z"] {
            t.bind(p.as_bytes(), 1u32);
        }
        t.bind(b"x.*.y", 2);
        t.bind(b"a.b", 3);
        assert_eq!(t.unbind_all(&1), 6);
        assert_eq!(t.unbind_all(&1), 0);
        assert_eq!(t.len(), 2);
        assert_eq!(routed(&t, "x.q.y"), vec![2]);
        assert_eq!(routed(&t, "a.b"), vec![3]);
        assert_eq!(routed(&t, ""), Vec::<u32>::new());
        let mut left: Vec<(Vec<u8>, u32)> =
            t.bindings().into_iter().map(|(p, d)| (p, *d)).collect();
        left.sort();
        assert_eq!(left, vec![(b"a.b".to_vec(), 3), (b"x.*.y".to_vec(), 2)]);
        // Nodes for a.#, #, x.*.z are gone: root, a, b, x, *, y.
        assert_eq!(t.nodes.len() - t.free.len(), 6);
        assert_eq!(t.unbind_all(&2) + t.unbind_all(&3), 2);
        assert_eq!(t.nodes.len() - t.free.len(), 1);
        assert!(t.edges.is_empty());
    }

    #[test]
    fn pathological_patterns_stay_polynomial() {
        let mut t = TopicTrie::new();
        let pattern = ["#.a"; 12].join(".") + ".#";
        t.bind(pattern.as_bytes(), 1u32);
        t.bind(["#"; 100].join(".").as_bytes(), 2);
        t.bind(["#.*"; 40].join(".").as_bytes(), 3);
        let key = ["a"; 120].join(".");
        let started = std::time::Instant::now();
        assert_eq!(routed(&t, &key), vec![1, 2, 3]);
        let miss = ["a"; 11].join(".") + ".b";
        assert_eq!(routed(&t, &miss), vec![2]);
        // A naive backtracking matcher would need ~C(120, 12) ≈ 10^16 steps.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn long_keys_and_patterns_do_not_recurse() {
        let mut t = TopicTrie::new();
        let deep = vec!["w"; 50_000].join(".");
        t.bind(deep.as_bytes(), 1u32);
        t.bind((deep.clone() + ".#").as_bytes(), 2);
        assert_eq!(routed(&t, &deep), vec![1, 2]);
        assert!(t.unbind(deep.as_bytes(), &1));
        assert_eq!(t.unbind_all(&2), 1);
        assert_eq!(t.nodes.len() - t.free.len(), 1);
    }

    #[test]
    fn many_bindings_on_one_exchange() {
        let mut t = TopicTrie::new();
        for i in 0..100_000u32 {
            let p = match i % 3 {
                0 => format!("server{i}.#"),
                1 => format!("*.user{i}.*"),
                _ => format!("region.{}.error{i}", i % 50),
            };
            assert!(t.bind(p.as_bytes(), i));
        }
        assert_eq!(t.len(), 100_000);
        assert_eq!(routed(&t, "server3.cpu.load"), vec![3]);
        assert_eq!(routed(&t, "eu.user4.login"), vec![4]);
        assert_eq!(routed(&t, "region.5.error5"), vec![5]);
        assert!(routed(&t, "nothing.here").is_empty());
    }

    #[test]
    fn many_hash_nodes_in_one_route() {
        // Enters more `#` nodes than HashEntries keeps inline.
        let mut t = TopicTrie::new();
        for i in 0..20u32 {
            t.bind(format!("#.b{i}.#").as_bytes(), i);
            t.bind(format!("#.b{i}.#.b{}.#", i + 1).as_bytes(), 100 + i);
        }
        let key: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
        let key = key.join(".");
        let mut want: Vec<u32> = (0..20).chain(100..119).collect();
        want.sort_unstable();
        assert_eq!(routed(&t, &key), want);
    }

    #[test]
    fn stack_spills_and_stays_lifo() {
        let mut s: Stack<u32, 4> = Stack::new(0);
        for i in 0..10 {
            s.push(i);
        }
        let popped: Vec<u32> = std::iter::from_fn(|| s.pop()).collect();
        assert_eq!(popped, (0..10).rev().collect::<Vec<_>>());
        let mut h = HashEntries::new();
        for n in 0..20 {
            assert_eq!(h.enter(n, 5, 99), Some(99));
        }
        for n in 0..20 {
            assert_eq!(h.enter(n, 7, 99), None, "covered by the entry at 5");
            assert_eq!(h.enter(n, 2, 99), Some(5), "only 2..5 is new");
            assert_eq!(h.enter(n, 2, 99), None);
        }
    }

    #[test]
    fn random_churn_with_compaction() {
        let mut rng = Rng(42);
        let pattern_words = ["a", "b", "c", "d", "", "*", "#"];
        let key_words = ["a", "b", "c", "d", ""];
        let mut t = TopicTrie::new();
        let mut model: Vec<(String, u32)> = Vec::new();
        for _ in 0..3000 {
            let p = rng.words(&pattern_words, 7);
            let d = rng.below(50) as u32;
            if t.bind(p.as_bytes(), d) {
                model.push((p, d));
            }
        }
        let check = |t: &TopicTrie<u32>, model: &[(String, u32)], rng: &mut Rng| {
            for _ in 0..50 {
                let key = rng.words(&key_words, 8);
                let mut want: Vec<u32> = model
                    .iter()
                    .filter(|(p, _)| reference(p, &key))
                    .map(|b| b.1)
                    .collect();
                want.sort_unstable();
                assert_eq!(routed(t, &key), want, "key {key:?}");
            }
        };
        check(&t, &model, &mut rng);
        let peak = t.nodes.len();
        // Remove 95%: a third via unbind_all, the rest one by one.
        for d in 0..15 {
            let n = model.iter().filter(|b| b.1 == d).count();
            assert_eq!(t.unbind_all(&d), n);
            model.retain(|b| b.1 != d);
        }
        while model.len() > 3000 / 20 {
            let (p, d) = model.swap_remove(rng.below(model.len()));
            assert!(t.unbind(p.as_bytes(), &d));
        }
        assert_eq!(t.len(), model.len());
        assert!(
            t.nodes.len() < peak / 2,
            "{} of {peak} node slots kept",
            t.nodes.len()
        );
        check(&t, &model, &mut rng);
    }

    #[test]
    fn debug_lists_bindings() {
        let mut t = TopicTrie::new();
        t.bind(b"a.*.#", 1u32);
        assert_eq!(format!("{t:?}"), r#"{"a.*.#": 1}"#);
    }

    /// xorshift64*: deterministic, dependency-free randomness for the tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn words(&mut self, alphabet: &[&str], max: usize) -> String {
            let n = self.below(max + 1);
            (0..n)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect::<Vec<_>>()
                .join(".")
        }
    }

    #[test]
    fn random_patterns_agree_with_reference() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let pattern_words = ["a", "b", "", "*", "#", "*", "#"];
        let key_words = ["a", "b", ""];
        for _round in 0..200 {
            let mut t = TopicTrie::new();
            let mut model: Vec<(String, u32)> = Vec::new();
            for _op in 0..60 {
                let p = rng.words(&pattern_words, 5);
                let d = rng.below(4) as u32;
                match rng.below(10) {
                    0..=5 => {
                        let fresh = !model.contains(&(p.clone(), d));
                        assert_eq!(t.bind(p.as_bytes(), d), fresh, "bind {p:?} {d}");
                        if fresh {
                            model.push((p, d));
                        }
                    }
                    6..=7 if !model.is_empty() => {
                        let (p, d) = model.swap_remove(rng.below(model.len()));
                        assert!(t.unbind(p.as_bytes(), &d), "unbind {p:?} {d}");
                    }
                    8 => {
                        let existed = model.contains(&(p.clone(), d));
                        assert_eq!(t.unbind(p.as_bytes(), &d), existed);
                        model.retain(|b| *b != (p.clone(), d));
                    }
                    _ => {
                        let n = model.iter().filter(|b| b.1 == d).count();
                        assert_eq!(t.unbind_all(&d), n);
                        model.retain(|b| b.1 != d);
                    }
                }
                assert_eq!(t.len(), model.len());
                for _ in 0..5 {
                    let key = rng.words(&key_words, 6);
                    let mut want: Vec<u32> = model
                        .iter()
                        .filter(|(p, _)| reference(p, &key))
                        .map(|b| b.1)
                        .collect();
                    want.sort_unstable();
                    assert_eq!(routed(&t, &key), want, "key {key:?} bindings {model:?}");
                }
            }
            let mut listed: Vec<(Vec<u8>, u32)> =
                t.bindings().into_iter().map(|(p, d)| (p, *d)).collect();
            let mut expected: Vec<(Vec<u8>, u32)> = model
                .iter()
                .map(|(p, d)| (p.clone().into_bytes(), *d))
                .collect();
            listed.sort();
            expected.sort();
            assert_eq!(listed, expected);
            // No node is left that serves no binding.
            for (id, n) in t.nodes.iter().enumerate() {
                if id != ROOT as usize && n.parent != FREE {
                    assert!(!n.is_empty(), "empty node {id} left behind");
                }
            }
        }
    }
}
