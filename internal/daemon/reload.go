package daemon

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	syncer "github.com/scimflare/scimflare/sync"
)

// Audit actions of a config reload (actor syncer.ActorReload).
const (
	ActionConfigReload         = "config_reload"
	ActionConfigReloadRejected = "config_reload_rejected"
)

// ErrReloadRejected: the new config was not taken; the running one stays.
var ErrReloadRejected = errors.New("config reload rejected; the running config stays")

// loadReload re-reads cur's file for a reload and audits the outcome,
// accepted or rejected with the reason. A config that moves the state file
// or the admin socket is rejected: the daemon cannot move them while it
// runs, and a CLI reading the new paths would open a second, empty state.
func loadReload(st store.Backend, cur *config.Config, now time.Time, trigger string) (*config.Config, string, error) {
	next, err := config.Load(cur.Path)
	if err == nil {
		switch {
		case next.State.Path != cur.State.Path:
			err = fmt.Errorf("%s: state.path changed from %s to %s: restart scimflare to move the state file", cur.Path, cur.State.Path, next.State.Path)
		case next.Admin.Socket != cur.Admin.Socket:
			err = fmt.Errorf("%s: admin.socket changed from %s to %s: restart scimflare to move the socket", cur.Path, cur.Admin.Socket, next.Admin.Socket)
		}
	}
	if err != nil {
		// Load's errors name the file already.
		reason := trigger + ": " + strings.ReplaceAll(err.Error(), "\n", "; ")
		rec := store.AuditRecord{Time: now, Actor: syncer.ActorReload, Action: ActionConfigReloadRejected, Reason: reason}
		if aerr := st.AppendAudit(rec); aerr != nil {
			return nil, "", errors.Join(fmt.Errorf("%w: %w", ErrReloadRejected, err), fmt.Errorf("audit the rejected reload: %w", aerr))
		}
		return nil, "", fmt.Errorf("%w: %w", ErrReloadRejected, err)
	}
	removed, added := mappingDiff(cur.Mappings, next.Mappings)
	summary := fmt.Sprintf("reloaded %s: %d account(s), %d mapping(s); %d mapping(s) added, %d removed",
		next.Path, len(next.Accounts), len(next.Mappings), len(added), len(removed))
	if restart := restartKeys(cur, next); len(restart) > 0 {
		summary += "; takes effect only at restart: " + strings.Join(restart, ", ")
	}
	rec := store.AuditRecord{
		Time: now, Actor: syncer.ActorReload, Action: ActionConfigReload, Before: removed, After: added,
		Reason: trigger + ": " + summary,
		// A new mapping can hand out access: flag it like any other grant.
		Privileged: len(added) > 0,
	}
	if err := st.AppendAudit(rec); err != nil {
		// Unaudited config changes are what the trail exists to prevent.
		return nil, "", fmt.Errorf("%w: cannot audit it: %w", ErrReloadRejected, err)
	}
	return next, summary, nil
}

// mappingDiff lists the mappings (in words) only in a, and only in b.
func mappingDiff(a, b []mapping.Mapping) (onlyA, onlyB []string) {
	da, db := describeMappings(a), describeMappings(b)
	for _, s := range da {
		if !slices.Contains(db, s) {
			onlyA = append(onlyA, s)
		}
	}
	for _, s := range db {
		if !slices.Contains(da, s) {
			onlyB = append(onlyB, s)
		}
	}
	return onlyA, onlyB
}

func describeMappings(ms []mapping.Mapping) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		var what []string
		what = append(what, m.Roles...)
		for _, p := range m.Policies {
			what = append(what, strings.Join(p.PermissionGroups, ", ")+" on "+strings.Join(p.ResourceGroups, ", "))
		}
		s := fmt.Sprintf("group %s -> %s: %s", m.GroupLabel(), m.Account, strings.Join(what, "; "))
		if m.TTL > 0 {
			s += " (ttl " + m.TTL.String() + ")"
		}
		if m.ExpiresAt != nil {
			s += " (until " + m.ExpiresAt.UTC().Format(time.RFC3339) + ")"
		}
		out[i] = s
	}
	return out
}

// restartKeys names the sections a reload reads but the running daemon
// built its listeners and clients from.
func restartKeys(a, b *config.Config) []string {
	var out []string
	if !reflect.DeepEqual(a.Server, b.Server) {
		out = append(out, "server")
	}
	if !reflect.DeepEqual(a.SCIM, b.SCIM) {
		out = append(out, "scim")
	}
	if a.Identity != b.Identity {
		out = append(out, "identity")
	}
	if a.Cloudflare != b.Cloudflare {
		out = append(out, "cloudflare")
	}
	return out
}
