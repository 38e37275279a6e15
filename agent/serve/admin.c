/*
 * admin.c: the admin protocol's words (see admin.h). No I/O, no state.
 */
#include "admin.h"

#include <string.h>

#include "agentline.h"

static const struct {
	const char *word;
	enum admin_command cmd;
} admin_words[] = {
    {"status", ADMIN_STATUS},
    {"drain", ADMIN_DRAIN},
    {"maint", ADMIN_MAINT},
    {"ready", ADMIN_READY},
    {"release", ADMIN_RELEASE},
    {"cluster", ADMIN_CLUSTER},
    {"cluster json", ADMIN_CLUSTER_JSON},
};

enum admin_command
admin_parse(const char *line, struct request *r)
{
	for (size_t i = 0; i < sizeof(admin_words) / sizeof(admin_words[0]); i++)
		if (strcmp(line, admin_words[i].word) == 0)
			return admin_words[i].cmd;
	if (strncmp(line, "check", 5) == 0 && (line[5] == ' ' || line[5] == '\0'))
		return agentline_parse(line + 5, strlen(line + 5), r) == AGENTLINE_OK ? ADMIN_CHECK : ADMIN_BAD_CHECK;
	return ADMIN_UNKNOWN;
}

bool
admin_is_ctl_word(const char *word)
{
	struct request r;
	enum admin_command cmd = admin_parse(word, &r);

	return cmd != ADMIN_UNKNOWN && cmd != ADMIN_CHECK && cmd != ADMIN_BAD_CHECK;
}

enum node_override
admin_override(enum admin_command cmd)
{
	return cmd == ADMIN_DRAIN ? OVERRIDE_DRAIN : cmd == ADMIN_MAINT ? OVERRIDE_MAINT : OVERRIDE_NONE;
}
