package plan

// wantedMap is t's members as a map, for comparing and printing whole
// tables in tests; nil for a nil table. The values share t's storage: read
// them, never write into their Keys.
func wantedMap(t *Wanted) map[string]DesiredMember {
	if t == nil {
		return nil
	}
	m := make(map[string]DesiredMember, t.Len())
	for k, dm := range t.All() {
		m[k] = dm
	}
	return m
}

// desiredView is d with every account's table as a map, so that two
// Desired compare with reflect.DeepEqual by what they want, not by how
// their tables are laid out.
type desiredView struct {
	Desired  Desired // Accounts nil
	Accounts map[string]map[string]DesiredMember
}

func viewDesired(d *Desired) *desiredView {
	if d == nil {
		return nil
	}
	v := &desiredView{Desired: *d}
	v.Desired.Accounts = nil
	if d.Accounts != nil {
		v.Accounts = make(map[string]map[string]DesiredMember, len(d.Accounts))
		for acct, t := range d.Accounts {
			v.Accounts[acct] = wantedMap(t)
		}
	}
	return v
}
