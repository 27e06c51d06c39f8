// Command scimload replays identity-provider push patterns over HTTP against
// a SCIM 2.0 endpoint and reports, per phase, operations per second,
// latency percentiles and errors by status.
//
// Phases:
//   - import: POST every user, POST every group, then add the memberships
//     with PATCH "add members" in chunks (-chunk, 100 by default, the batch
//     size Okta and Entra ID use);
//   - churn: user attribute updates, deactivations (Okta's no-path
//     replace of active) and member moves (remove from one group, add to
//     another);
//   - lookup: `userName eq` filters, GET of the biggest group with
//     excludedAttributes=members, and one-member remove/add PATCHes on the
//     biggest group.
//
// Group 0 is the biggest group: it holds min(users, memberships) users, and
// the other memberships are spread evenly over the other groups. Churn
// never moves members of group 0 and the lookup phase puts back every
// member it removes, so the final state is known exactly (see model).
//
// The run is bounded: every phase has a fixed number of operations and the
// whole run a deadline (-timeout). `scimload report` compares the -json
// output of several runs side by side and fails on errors or on a
// throughput floor, for CI.
//
// scimload must never retry a failed request (that would hide the errors it
// exists to count) and must never talk to anything but the URL it is given.
package main
