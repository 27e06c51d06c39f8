package store_test

import (
	"testing"

	"github.com/scimflare/scimflare/store/storetest"
)

func TestUserGroupConformance(t *testing.T) {
	storetest.RunUserGroups(t, func(t *testing.T) storetest.UserGroupBackend { return openBolt(t) })
}
