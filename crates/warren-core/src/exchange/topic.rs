//! Topic exchange routing (placeholder: a linear scan; to be replaced by a trie).

/// Topic bindings from patterns (`*` one word, `#` zero or more words) to destinations.
#[derive(Debug)]
pub struct TopicTrie<D> {
    bindings: Vec<(Vec<Vec<u8>>, D)>,
}

impl<D> Default for TopicTrie<D> {
    fn default() -> Self {
        TopicTrie {
            bindings: Vec::new(),
        }
    }
}

fn words(s: &[u8]) -> Vec<Vec<u8>> {
    s.split(|b| *b == b'.').map(|w| w.to_vec()).collect()
}

fn matches(p: &[Vec<u8>], k: &[&[u8]]) -> bool {
    match p.first() {
        None => k.is_empty(),
        Some(w) if w.as_slice() == b"#" => (0..=k.len()).any(|i| matches(&p[1..], &k[i..])),
        Some(w) => {
            !k.is_empty()
                && (w.as_slice() == b"*" || w.as_slice() == k[0])
                && matches(&p[1..], &k[1..])
        }
    }
}

impl<D: PartialEq> TopicTrie<D> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a binding; returns false if this exact (pattern, dest) was already bound.
    pub fn bind(&mut self, pattern: &[u8], dest: D) -> bool {
        let w = words(pattern);
        if self.bindings.iter().any(|(p, d)| *p == w && *d == dest) {
            return false;
        }
        self.bindings.push((w, dest));
        true
    }

    /// Remove a binding; returns false if it did not exist.
    pub fn unbind(&mut self, pattern: &[u8], dest: &D) -> bool {
        let w = words(pattern);
        let before = self.bindings.len();
        self.bindings.retain(|(p, d)| !(*p == w && d == dest));
        before != self.bindings.len()
    }

    /// Remove every binding to `dest`; returns how many were removed.
    pub fn unbind_all(&mut self, dest: &D) -> usize {
        let before = self.bindings.len();
        self.bindings.retain(|(_, d)| d != dest);
        before - self.bindings.len()
    }

    /// Call `f` once for each binding whose pattern matches `key` (a destination bound
    /// with several matching patterns is reported once per pattern; callers dedupe).
    pub fn route(&self, key: &[u8], mut f: impl FnMut(&D)) {
        let k: Vec<&[u8]> = key.split(|b| *b == b'.').collect();
        for (p, d) in &self.bindings {
            if matches(p, &k) {
                f(d)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}
