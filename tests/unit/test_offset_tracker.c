#include "kafka/offset_tracker.h"
#include "util/err.h"
#include "tw_test.h"

typedef struct {
    int32_t partition[16];
    int64_t next[16];
    int n;
} commits_t;

static void record_commit(void *opaque, int32_t partition, int64_t next_offset)
{
    commits_t *c = opaque;
    c->partition[c->n] = partition;
    c->next[c->n] = next_offset;
    c->n++;
}

TW_TEST(watermark_waits_for_the_oldest_post)
{
    offset_tracker_t *t;
    TW_ASSERT_INT_EQ(offset_tracker_new(&t), 0);
    for (int64_t o = 10; o < 15; o++)
        TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, o), 0);
    commits_t c = {0};
    offset_tracker_done(t, 0, 12);
    offset_tracker_done(t, 0, 13);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 0);
    offset_tracker_done(t, 0, 10);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.next[0], 11);
    offset_tracker_done(t, 0, 11);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.next[1], 14); /* 11, 12, 13 done; 14 still in flight */
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 1);
    offset_tracker_done(t, 0, 14);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.next[2], 15);
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 0);
    offset_tracker_free(t);
}

TW_TEST(post_with_several_outputs_waits_for_all)
{
    /* an alert plus two campaign records: the offset is finished by the third report */
    offset_tracker_t *t;
    TW_ASSERT_INT_EQ(offset_tracker_new(&t), 0);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, 5), 0);
    TW_ASSERT_INT_EQ(offset_tracker_ref(t, 0, 5), 0);
    TW_ASSERT_INT_EQ(offset_tracker_ref(t, 0, 5), 0);
    TW_ASSERT(offset_tracker_ref(t, 0, 4) != 0); /* not the last added */
    TW_ASSERT(offset_tracker_ref(t, 1, 5) != 0); /* unknown partition */
    commits_t c = {0};
    offset_tracker_done(t, 0, 5);
    offset_tracker_done(t, 0, 5);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 0);
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 1);
    offset_tracker_done(t, 0, 5);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.next[0], 6);
    offset_tracker_done(t, 0, 5); /* a stray extra report changes nothing */
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 0);
    offset_tracker_free(t);
}

TW_TEST(partitions_are_independent_and_gaps_are_fine)
{
    offset_tracker_t *t;
    TW_ASSERT_INT_EQ(offset_tracker_new(&t), 0);
    /* compacted or transactional topics skip offsets */
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 1, 5), 0);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 1, 9), 0);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 2, 0), 0);
    offset_tracker_done(t, 2, 0);
    offset_tracker_done(t, 1, 9);
    commits_t c = {0};
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.partition[0], 2);
    TW_ASSERT_INT_EQ(c.next[0], 1);
    offset_tracker_done(t, 1, 5);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.partition[1], 1);
    TW_ASSERT_INT_EQ(c.next[1], 10);
    offset_tracker_free(t);
}

TW_TEST(revoked_partition_ignores_late_reports)
{
    offset_tracker_t *t;
    TW_ASSERT_INT_EQ(offset_tracker_new(&t), 0);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 3, 100), 0);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 3, 101), 0);
    offset_tracker_forget(t, 3);
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 0);
    offset_tracker_done(t, 3, 100); /* a delivery report arriving after the revoke */
    commits_t c = {0};
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 0);
    offset_tracker_done(t, 3, 100); /* twice is harmless too */
    offset_tracker_free(t);
}

TW_TEST(ring_grows_across_wraparound)
{
    offset_tracker_t *t;
    TW_ASSERT_INT_EQ(offset_tracker_new(&t), 0);
    int64_t next = 0;
    commits_t c = {0};
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 300; i++)
            TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, next + i), 0);
        for (int i = 299; i >= 0; i--)
            offset_tracker_done(t, 0, next + i);
        next += 300;
        c.n = 0;
        TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
        TW_ASSERT_INT_EQ(c.next[0], next);
    }
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 0);
    offset_tracker_free(t);
}

/* An eager rebalance that leaves a partition assigned re-fetches it from the last commit: the
 * same offsets come again. The tracker refuses them (and counts them) so its ring stays
 * sorted and the watermark keeps moving; before, the repeats went in behind larger offsets
 * and the commit stuck at one offset while pending grew. */
TW_TEST(repeated_and_backward_offsets_are_refused)
{
    offset_tracker_t *t;
    TW_ASSERT_INT_EQ(offset_tracker_new(&t), 0);
    for (int64_t o = 100; o < 105; o++)
        TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, o), 0);
    offset_tracker_done(t, 0, 100);
    commits_t c = {0};
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.next[0], 101);
    /* re-fetched from the commit (101): in flight already, refused */
    for (int64_t o = 101; o < 105; o++)
        TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, o), TW_ERR_INVALID);
    TW_ASSERT_INT_EQ(offset_tracker_refused(t), 4);
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 4);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, 105), 0);
    for (int64_t o = 101; o < 106; o++)
        offset_tracker_done(t, 0, o);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.next[1], 106);
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 0);
    /* nothing in flight: the last offset added still bounds what may come next */
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, 105), TW_ERR_INVALID);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, 7), TW_ERR_INVALID);
    TW_ASSERT_INT_EQ(offset_tracker_refused(t), 6);
    TW_ASSERT_INT_EQ(offset_tracker_pending(t), 0);
    /* other partitions are not affected */
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 1, 7), 0);
    /* after a revocation the partition starts afresh: its next owner may be us, from the
     * last commit */
    offset_tracker_forget(t, 0);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, 50), 0);
    offset_tracker_done(t, 0, 50);
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.next[2], 51);
    TW_ASSERT_INT_EQ(offset_tracker_refused(t), 6);
    offset_tracker_free(t);
}

/* A post whose campaign claims are rechecked after later posts were added: its held offset
 * takes the recheck's records as more outputs, and the watermark waits for all of them. */
TW_TEST(held_offset_takes_outputs_out_of_order)
{
    offset_tracker_t *t;
    TW_ASSERT_INT_EQ(offset_tracker_new(&t), 0);
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, 5), 0);
    TW_ASSERT_INT_EQ(offset_tracker_ref(t, 0, 5), 0); /* the hold for the recheck */
    TW_ASSERT_INT_EQ(offset_tracker_add(t, 0, 6), 0);
    offset_tracker_done(t, 0, 6);
    offset_tracker_done(t, 0, 5); /* its alert */
    commits_t c = {0};
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 0);
    TW_ASSERT_INT_EQ(offset_tracker_ref_held(t, 0, 5), 0); /* a rechecked campaign record */
    TW_ASSERT(offset_tracker_ref_held(t, 0, 6) != 0);      /* finished */
    TW_ASSERT(offset_tracker_ref_held(t, 0, 4) != 0);      /* never tracked */
    TW_ASSERT(offset_tracker_ref_held(t, 1, 5) != 0);      /* unknown partition */
    offset_tracker_done(t, 0, 5);                          /* the hold */
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 0);
    offset_tracker_done(t, 0, 5); /* the record's delivery */
    TW_ASSERT_INT_EQ(offset_tracker_collect(t, record_commit, &c), 1);
    TW_ASSERT_INT_EQ(c.n, 1);
    TW_ASSERT_INT_EQ(c.next[0], 7);
    offset_tracker_free(t);
}

int main(void)
{
    TW_RUN(TW_CASE(watermark_waits_for_the_oldest_post),
           TW_CASE(post_with_several_outputs_waits_for_all),
           TW_CASE(held_offset_takes_outputs_out_of_order),
           TW_CASE(partitions_are_independent_and_gaps_are_fine),
           TW_CASE(revoked_partition_ignores_late_reports), TW_CASE(ring_grows_across_wraparound),
           TW_CASE(repeated_and_backward_offsets_are_refused));
}
