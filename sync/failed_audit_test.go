package sync

import (
	"strings"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// A change Cloudflare refuses is in the audit trail too: a reviewer must
// see that an invite or a removal was attempted and did not land.
func TestFailedChangeIsAudited(t *testing.T) {
	e := newEnv(t)
	e.group("cf-deployers", e.user("fay@example.com"))
	e.fake.Inject(cftest.Fault{Method: "POST", Route: cloudflare.RouteMembers, Status: 403, Times: -1})
	res := e.apply(RunOptions{Actor: ActorApply})
	if len(res.Failed) != 1 {
		t.Fatalf("failed changes = %d, want 1", len(res.Failed))
	}
	recs := e.audit(ActionChangeFailed)
	if len(recs) != 1 {
		t.Fatalf("change_failed records = %d, want 1", len(recs))
	}
	r := recs[0]
	if r.Email != "fay@example.com" || r.Actor != ActorApply || !strings.Contains(r.Reason, "add_member failed") ||
		len(r.After) != 1 || r.After[0] != "Workers Platform Admin" {
		t.Errorf("record = %+v", r)
	}
	if got := e.audit("add_member"); len(got) != 0 {
		t.Errorf("a refused invite must not be recorded as applied: %+v", got)
	}
}
