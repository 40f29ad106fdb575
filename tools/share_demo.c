/*
 * Two processes sharing memory through XPMEM, using only xpmem.h.
 *
 * The parent exports a buffer, a child (its own registration) attaches it,
 * reads the parent's message and writes an answer in place; the parent
 * reads the answer from its own buffer.  Exit status 0 means it worked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xpmem.h>

#define BUF_SIZE (4u << 20)

static int child(int rd, int wr)
{
	xpmem_segid_t segid;
	xpmem_apid_t apid;
	char *remote;

	if (read(rd, &segid, sizeof(segid)) != sizeof(segid))
		return 1;
	apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, (void *)0600);
	if (apid < 0) {
		perror("child: xpmem_get");
		return 1;
	}
	remote = xpmem_attach((struct xpmem_addr){ .apid = apid, .offset = 0 },
			      BUF_SIZE, NULL);
	if (remote == (void *)-1) {
		perror("child: xpmem_attach");
		return 1;
	}
	printf("child  %d: attached the parent's buffer at %p, it says: \"%s\"\n",
	       getpid(), (void *)remote, remote);
	snprintf(remote + BUF_SIZE / 2, 64, "hello back from process %d", getpid());
	xpmem_detach(remote);
	xpmem_release(apid);
	return write(wr, "", 1) == 1 ? 0 : 1;
}

int main(void)
{
	int to_child[2], to_parent[2], status;
	xpmem_segid_t segid;
	char *buf, done;
	pid_t pid;

	if (xpmem_version() < 0) {
		fprintf(stderr, "xpmem unavailable: %s\n", xpmem_unavailable_reason());
		return 2;
	}
	printf("xpmem version 0x%x\n", xpmem_version());
	buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || pipe(to_child) || pipe(to_parent))
		return 1;
	snprintf(buf, 64, "hello from process %d", getpid());
	segid = xpmem_make(buf, BUF_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid < 0) {
		perror("xpmem_make");
		return 1;
	}
	printf("parent %d: exported %u bytes at %p\n", getpid(), BUF_SIZE, (void *)buf);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(child(to_child[0], to_parent[1]));
	if (write(to_child[1], &segid, sizeof(segid)) != sizeof(segid) ||
	    read(to_parent[0], &done, 1) != 1)
		return 1;
	waitpid(pid, &status, 0);
	printf("parent %d: my buffer now says: \"%s\"\n", getpid(), buf + BUF_SIZE / 2);
	xpmem_remove(segid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) ||
	    strncmp(buf + BUF_SIZE / 2, "hello back", 10)) {
		fprintf(stderr, "FAILED\n");
		return 1;
	}
	printf("OK: two processes shared memory through /dev/xpmem\n");
	return 0;
}
