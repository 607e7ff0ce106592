/*
 * list.h - an intrusive doubly linked list (a ring around a head), for
 * the lists whose members come and go in any order: a worker's tasks, the
 * workers waiting for work, held answers, waiting refusals.
 *
 * A member embeds a struct list_node; list_entry() gets the member back.
 * Every operation is O(1); a node may be removed while a walk is at it if
 * the walk took the next node first (list_for_each_safe).  A node that is
 * in no list has prev and next NULL (zeroed memory is such a node).
 */
#ifndef FERRY_LIST_H
#define FERRY_LIST_H

#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

struct list {
	struct list_node head; /* head.next: the first; head.prev: the last */
};

/* The struct of type that embeds node as member. */
#define list_entry(node, type, member)                                      \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

static inline void
list_init(struct list *l)
{
	l->head.prev = l->head.next = &l->head;
}

static inline int
list_empty(const struct list *l)
{
	return l->head.next == &l->head;
}

/* Whether n is in a list. */
static inline int
list_linked(const struct list_node *n)
{
	return n->next != NULL;
}

static inline void
list_insert_after(struct list_node *at, struct list_node *n)
{
	n->prev       = at;
	n->next       = at->next;
	at->next->prev = n;
	at->next      = n;
}

/* Add n (in no list) at the end / the front of l. */
static inline void
list_append(struct list *l, struct list_node *n)
{
	list_insert_after(l->head.prev, n);
}

static inline void
list_prepend(struct list *l, struct list_node *n)
{
	list_insert_after(&l->head, n);
}

/* Take n out of its list (n must be in one). */
static inline void
list_remove(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

/* The first node of l, or NULL. */
static inline struct list_node *
list_first(const struct list *l)
{
	return list_empty(l) ? NULL : l->head.next;
}

/* The node after n in l, or NULL. */
static inline struct list_node *
list_next(const struct list *l, const struct list_node *n)
{
	return n->next == &l->head ? NULL : n->next;
}

/* Walk l; the loop may remove (or free) the node it is at. */
#define list_for_each_safe(l, n, tmp)                                       \
	for ((n) = list_first(l), (tmp) = (n) ? list_next((l), (n)) : NULL; \
	     (n) != NULL;                                                   \
	     (n) = (tmp), (tmp) = (n) ? list_next((l), (n)) : NULL)

#endif
