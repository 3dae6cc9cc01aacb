package cidr

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// item is one (prefix, network) pair in a form that sorts fast.
type item struct {
	hi, lo uint64 // the address, as 16 bytes big-endian (IPv4 in ::ffff:0:0/96)
	v6     bool
	bits   uint8
	name   int32 // index into Set.names
}

func itemOf(p netip.Prefix, name int32) item {
	a := p.Addr()
	b := a.As16()
	return item{
		hi:   binary.BigEndian.Uint64(b[:8]),
		lo:   binary.BigEndian.Uint64(b[8:]),
		v6:   !a.Is4(),
		bits: uint8(p.Bits()),
		name: name,
	}
}

func (it item) prefix() netip.Prefix {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], it.hi)
	binary.BigEndian.PutUint64(b[8:], it.lo)
	a := netip.AddrFrom16(b)
	if !it.v6 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, int(it.bits))
}

// samePrefix reports whether x and y hold the same prefix.
func samePrefix(x, y item) bool {
	return x.hi == y.hi && x.lo == y.lo && x.v6 == y.v6 && x.bits == y.bits
}

// compareItems orders by family (IPv4 first), address, prefix length, then
// network. For canonical prefixes this puts every prefix after all
// prefixes that contain it: a depth-first pre-order of the containment
// tree.
func compareItems(x, y item) int {
	if x.v6 != y.v6 {
		if x.v6 {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(x.hi, y.hi); c != 0 {
		return c
	}
	if c := cmp.Compare(x.lo, y.lo); c != 0 {
		return c
	}
	if c := cmp.Compare(x.bits, y.bits); c != 0 {
		return c
	}
	return cmp.Compare(x.name, y.name)
}

// build makes a Set from valid names mapped to canonical prefixes. It owns
// the slices in parsed and reuses them for the sorted, de-duplicated
// per-network lists.
func build(parsed map[string][]netip.Prefix) (*Set, error) {
	s := &Set{names: sortedKeys(parsed), prefixes: parsed}
	n := 0
	for _, ps := range parsed {
		n += len(ps)
	}
	if n == 0 {
		return s, nil
	}

	// One sort of every (prefix, network) pair gives the distinct prefixes
	// in containment pre-order, each with its owners in a run, and each
	// network's prefixes in order.
	items := make([]item, 0, n)
	for i, name := range s.names {
		for _, p := range parsed[name] {
			items = append(items, itemOf(p, int32(i)))
		}
		parsed[name] = parsed[name][:0] // refilled below, in order
	}
	slices.SortFunc(items, compareItems)

	in := newInterner(s.names)
	var (
		entries = make([]entry, 0, len(items))
		combos  = make([]int32, 0, len(items)) // interned combination per entry
		// redundant marks the entries whose combination is their
		// innermost container's.
		redundant = make([]bool, 0, len(items))
		stack     []int // entries that contain the current one, outermost first
		owners    []int32
	)
	for i := 0; i < len(items); {
		j := i + 1
		for j < len(items) && samePrefix(items[i], items[j]) {
			j++
		}
		p := items[i].prefix()
		owners = owners[:0]
		for _, it := range items[i:j] {
			if len(owners) == 0 || owners[len(owners)-1] != it.name {
				owners = append(owners, it.name)
				name := s.names[it.name]
				parsed[name] = append(parsed[name], p)
			}
		}
		i = j

		for len(stack) > 0 && !contains(entries[stack[len(stack)-1]].prefix, p) {
			stack = stack[:len(stack)-1]
		}
		parent := int32(-1)
		if len(stack) > 0 {
			parent = combos[stack[len(stack)-1]]
		}
		c := in.extend(parent, owners)
		redundant = append(redundant, c == parent)
		stack = append(stack, len(entries))
		entries = append(entries, entry{prefix: p, names: in.combos[c]})
		combos = append(combos, c)
	}
	for _, name := range s.names {
		s.total += len(parsed[name])
	}

	// An entry whose combination of networks is its innermost container's
	// answers every lookup the same way that container does: the trie
	// does not need it. (Its inner entries, if any, keep their own
	// combination, which includes its names.) Skipping these keeps the
	// trie, which the collector scans on every cycle, small: in a long
	// list of one network's prefixes many sit inside another.
	v4 := make([]*entry, 0, len(entries))
	var v6 []*entry
	for i := range entries {
		if redundant[i] {
			continue
		}
		if entries[i].prefix.Addr().Is4() {
			v4 = append(v4, &entries[i])
		} else {
			v6 = append(v6, &entries[i])
		}
	}
	var tasks4, tasks6 []buildTask
	s.v4, tasks4 = plan(v4, v4ShardBits)
	s.v6, tasks6 = plan(v6, v6ShardBits)
	if err := fill(append(tasks4, tasks6...)); err != nil {
		return nil, err
	}
	return s, nil
}

// contains reports whether prefix outer contains prefix inner. Both are
// canonical.
func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// interner hands out one shared, sorted []string per distinct combination
// of network names. Names are handled as indexes into the sorted names, so
// sorted indexes mean sorted names.
type interner struct {
	names  []string
	combos [][]string // by combination id: the interned answer
	ids    [][]int32  // by combination id: the same, as name indexes
	byKey  map[string]int32
	memo1  map[[2]int32]int32 // (parent, the one owner) -> id
	memoN  map[string]int32   // encoded (parent, owners...) -> id
	buf    []byte
}

func newInterner(names []string) *interner {
	return &interner{
		names: names,
		byKey: make(map[string]int32),
		memo1: make(map[[2]int32]int32),
		memoN: make(map[string]int32),
	}
}

// encode appends parent and ids to in.buf[:0] as bytes and returns them.
func (in *interner) encode(parent int32, ids []int32) []byte {
	in.buf = binary.BigEndian.AppendUint32(in.buf[:0], uint32(parent))
	for _, id := range ids {
		in.buf = binary.BigEndian.AppendUint32(in.buf, uint32(id))
	}
	return in.buf
}

// extend returns the id of the union of combination parent (-1 for none)
// and the sorted, unique name indexes own.
func (in *interner) extend(parent int32, own []int32) int32 {
	if len(own) == 1 {
		if id, ok := in.memo1[[2]int32{parent, own[0]}]; ok {
			return id
		}
	} else if id, ok := in.memoN[string(in.encode(parent, own))]; ok {
		return id
	}

	var union []int32
	if parent >= 0 {
		union = append(union, in.ids[parent]...)
	}
	union = append(union, own...)
	slices.Sort(union)
	union = slices.Compact(union)
	id, ok := in.byKey[string(in.encode(-1, union))]
	if !ok {
		id = int32(len(in.combos))
		in.byKey[string(in.buf)] = id
		names := make([]string, len(union))
		for i, u := range union {
			names[i] = in.names[u]
		}
		in.combos = append(in.combos, names)
		in.ids = append(in.ids, slices.Clip(union))
	}

	if len(own) == 1 {
		in.memo1[[2]int32{parent, own[0]}] = id
	} else {
		in.memoN[string(in.encode(parent, own))] = id
	}
	return id
}
