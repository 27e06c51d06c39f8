package sync

import (
	"context"
	"fmt"
	"maps"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// buildDesired reads the temporary grants and the names, and builds
// desired state from one snapshot of the state: what the run plans toward.
// For a targeted run scope is what it may change.
func (rn *run) buildDesired(ctx context.Context) (scope map[string]bool, err error) {
	r, cfg := rn.r, rn.cfg
	grants, err := r.state.Grants()
	if err != nil {
		return nil, fmt.Errorf("read temporary grants: %w", err)
	}
	rn.grants = grants
	// A full run always reads the names: it is what renews the cache the
	// cheaper runs plan with.
	reuse := rn.req.kind != fullRun && !rn.req.live
	cats, cached, err := r.runCatalogs(ctx, cfg, grants, reuse, rn.now)
	if err != nil {
		return nil, err
	}
	res, temp, err := rn.resolveNames(cats)
	if err != nil && cached != nil {
		// The name may be newer than the cache: ask Cloudflare before
		// calling it unknown.
		r.log.Info("a name does not resolve in the cached catalogs; reading them again", "error", err)
		r.dropNames(cached)
		cached = nil
		if cats, err = r.liveCatalogs(ctx, cfg, rn.now); err == nil {
			res, temp, err = rn.resolveNames(cats)
		}
	}
	if err != nil {
		return nil, err
	}
	rn.cachedNames, rn.res, rn.cats = cached, res, cats
	maps.Copy(rn.result.Names, rn.res.Names)

	// Desired state from one snapshot.
	var desired *plan.Desired
	err = r.state.View(func(rd store.Reader) error {
		var users map[string]bool
		if rn.req.kind == targetedRun {
			var err error
			if users, scope, err = rn.req.touched.scope(rd); err != nil {
				return fmt.Errorf("expand the touched users and groups: %w", err)
			}
		}
		var err error
		desired, err = plan.Build(directory{rd}, rn.res, temp, users, rn.now)
		rn.users = users
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the state: %w", err)
	}

	rn.desired = desired
	return scope, nil
}

// resolveNames turns the mapping table and the temporary grants into keys
// with cats.
func (rn *run) resolveNames(cats map[string]mapping.Catalog) (*mapping.Resolved, []plan.TempGrant, error) {
	res, err := resolve(rn.cfg, cats)
	if err != nil {
		return nil, nil, err
	}
	temp, err := tempGrants(rn.grants, rn.cfg, res, cats, rn.now, true)
	if err != nil {
		return nil, nil, err
	}
	return res, temp, nil
}

func expiredIn(d *plan.Desired, accountID string) []plan.Expired {
	var out []plan.Expired
	for _, e := range d.Expired {
		if e.AccountID == accountID {
			out = append(out, e)
		}
	}
	return out
}

// renewNames drops the cached names the run planned with, reads them from
// Cloudflare and builds desired state again from a fresh snapshot, for the
// same users. Reads only: an error leaves the run's plan as it was.
func (rn *run) renewNames(ctx context.Context) error {
	r := rn.r
	r.dropNames(rn.cachedNames)
	rn.cachedNames = nil
	cats, err := r.liveCatalogs(ctx, rn.cfg, r.now())
	if err != nil {
		return err
	}
	res, temp, err := rn.resolveNames(cats)
	if err != nil {
		return err
	}
	var desired *plan.Desired
	err = r.state.View(func(rd store.Reader) error {
		var err error
		desired, err = plan.Build(directory{rd}, res, temp, rn.users, rn.now)
		return err
	})
	if err != nil {
		return fmt.Errorf("read the state: %w", err)
	}
	rn.res, rn.desired, rn.renamed, rn.cats = res, desired, true, cats
	maps.Copy(rn.result.Names, res.Names)
	for i := range rn.inputs {
		in := &rn.inputs[i]
		in.Desired = desired.Accounts[in.ID]
		in.Expired = expiredIn(desired, in.ID)
		if a, ok := accountByID(rn.cfg, in.ID); ok {
			rn.shape(in, a)
		}
		if err := rn.seeEveryHolder(i); err != nil {
			return err
		}
	}
	return nil
}

// seeEveryHolder completes a scoped read of account i (inputs and reads
// index) with the rest of its member cache once a member in scope holds
// the Super Administrator role — after a read before a write showed it, or
// renamed roles changed its key: the last-super-admin policy counts every
// holder, and counting only those in scope would withhold a leaver's
// removal as "the last" one.
func (reg *registry) seeEveryHolder(i int) error {
	rd, in := &reg.reads[i], &reg.inputs[i]
	if !rd.partial || rd.whole || !holdsSuperAdmin(in.Actual, in.IsSuperAdmin) {
		return nil
	}
	rd.whole = true
	return reg.readWholeCache(in)
}

// readWholeCache adds to a scoped read's members every other member of
// the account's cache; those in scope stay as the run knows them.
func (reg *registry) readWholeCache(in *plan.AccountInput) error {
	cached, err := reg.state.CachedMembers(in.ID)
	if err != nil {
		return fmt.Errorf("read the member cache of account %s: %w", in.Name, err)
	}
	for _, m := range cached {
		if key := identity.Key(m.Email); !in.Actual.Has(key) {
			in.Actual.Set(key, cachedActual(m))
		}
	}
	return nil
}
