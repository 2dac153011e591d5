/*
 * The anchor for bench:convert: libvirt 9.0's own Xen converters, timed on the inputs our
 * converters are timed on.
 *
 * libvirt's libxl driver refuses to start on a host that is not a Xen dom0, but its module
 * (Debian's libvirt-daemon-driver-xen) exports the converters and libvirt.so exports what they
 * need. This program loads both and sets up the driver state the converters read the way
 * libvirt's own conversion tests do (capabilities for x86_64 hvm, xen and xenpvh guests; the
 * driver's XML options), then repeats exactly the steps libvirtd's libxl driver takes for
 * virConnectDomainXMLFromNative / ToNative:
 *   from-native: virConfReadString, xenParseXL|xenParseXM, virDomainDefFormat(INACTIVE)
 *   to-native:   virDomainDefParseString(INACTIVE), xenFormatXL|xenFormatXM, virConfWriteMem
 *                into a fresh zeroed 65 KiB buffer
 * Nothing here is libvirt's code; only its exported functions are called. libvirt's internal
 * structures are mirrored where the converters need them, and the mirror is checked against
 * values libvirt itself sets before anything is timed.
 *
 * Usage: libvirt-anchor print CASE FILE          prints the converted document once
 *        libvirt-anchor bench SECONDS CASE FILE [CASE FILE]...
 *                                                prints "NAME RATE" per case (conv/s of CPU)
 * CASE is from-xl, from-xm, to-xl or to-xm.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_MODULE "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_libxl.so"

/* Values of libvirt 9.0's enums (src/conf/domain_conf.h) and flags. */
enum { OSTYPE_HVM = 0, OSTYPE_XEN = 1, OSTYPE_XENPVH = 5 };
enum { VIRT_XEN = 4 };
enum { PARSE_INACTIVE = 1 << 1, FORMAT_INACTIVE = 1 << 1 };
#define MAX_CONFIG_SIZE (1024 * 65)

/* Mirrors of the two driver structures the converters' callbacks read (libxl_conf.h). */
struct driver_config {
    unsigned char parent[24]; /* virObject = GObject */
    const void *verInfo;
    unsigned int version;
    void *logger;
    void *ctx;
    bool autoballoon;
    char *lockManagerName;
    int keepAliveInterval;
    unsigned int keepAliveCount;
    bool nested_hvm;
    void *caps;
    char *configBaseDir;
};

struct driver {
    pthread_mutex_t lock; /* virMutex */
    void *hostdevMgr;
    struct driver_config *config;
    int lockFD;
    unsigned int nactive;
    void *inhibitCallback;
    void *inhibitOpaque;
    void *domains;
    void *xmlopt;
    void *rest[8];
};

static struct {
    int (*initialize)(void);
    const char *(*lastError)(void);
    int (*archFromHost)(void);
    void *(*capsNew)(int, bool, bool);
    void *(*allocMachines)(const char *const *, int);
    void *(*addGuest)(void *, int, int, const char *, const char *, int, void *);
    void *(*addGuestDomain)(void *, int, const char *, const char *, int, void *);
    void *(*getConnect)(void);
    void *(*confReadString)(const char *, unsigned int);
    int (*confWriteMem)(char *, int *, void *);
    int (*confFree)(void *);
    void *(*defParseString)(const char *, void *, void *, unsigned int);
    char *(*defFormat)(void *, void *, unsigned int);
    void (*defFree)(void *);
    struct driver_config *(*configNew)(void);
    void *(*createXMLConf)(struct driver *);
    void *(*parseXL)(void *, void *, void *);
    void *(*parseXM)(void *, void *, void *);
    void *(*formatXL)(void *, void *);
    void *(*formatXM)(void *, void *);
} lv;

static void *caps, *xmlopt, *conn;

static void die(const char *what)
{
    const char *err = lv.lastError ? lv.lastError() : NULL;
    fprintf(stderr, "libvirt-anchor: %s%s%s\n", what, err ? ": " : "", err ? err : "");
    exit(1);
}

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "libvirt-anchor: %s: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}

static void load(void)
{
    const char *module = getenv("LIBVIRT_LIBXL_MODULE");
    void *lib = dlopen("libvirt.so.0", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        fprintf(stderr, "libvirt-anchor: %s\n", dlerror());
        exit(1);
    }
    void *mod = dlopen(module ? module : DEFAULT_MODULE, RTLD_NOW);
    if (!mod) {
        fprintf(stderr, "libvirt-anchor: %s\n", dlerror());
        exit(1);
    }
    *(void **)&lv.initialize = sym(lib, "virInitialize");
    *(void **)&lv.lastError = sym(lib, "virGetLastErrorMessage");
    *(void **)&lv.archFromHost = sym(lib, "virArchFromHost");
    *(void **)&lv.capsNew = sym(lib, "virCapabilitiesNew");
    *(void **)&lv.allocMachines = sym(lib, "virCapabilitiesAllocMachines");
    *(void **)&lv.addGuest = sym(lib, "virCapabilitiesAddGuest");
    *(void **)&lv.addGuestDomain = sym(lib, "virCapabilitiesAddGuestDomain");
    *(void **)&lv.getConnect = sym(lib, "virGetConnect");
    *(void **)&lv.confReadString = sym(lib, "virConfReadString");
    *(void **)&lv.confWriteMem = sym(lib, "virConfWriteMem");
    *(void **)&lv.confFree = sym(lib, "virConfFree");
    *(void **)&lv.defParseString = sym(lib, "virDomainDefParseString");
    *(void **)&lv.defFormat = sym(lib, "virDomainDefFormat");
    *(void **)&lv.defFree = sym(lib, "virDomainDefFree");
    *(void **)&lv.configNew = sym(mod, "libxlDriverConfigNew");
    *(void **)&lv.createXMLConf = sym(mod, "libxlCreateXMLConf");
    *(void **)&lv.parseXL = sym(mod, "xenParseXL");
    *(void **)&lv.parseXM = sym(mod, "xenParseXM");
    *(void **)&lv.formatXL = sym(mod, "xenFormatXL");
    *(void **)&lv.formatXM = sym(mod, "xenFormatXM");
}

/* One guest type with one machine and the Xen domain type, as libvirt's conversion tests have. */
static void add_guest(int ostype, const char *machine, const char *loader)
{
    const char *const names[] = { machine };
    void *machines = lv.allocMachines(names, 1);
    void *guest = lv.addGuest(caps, ostype, lv.archFromHost(), "/usr/lib/xen/bin/qemu-system-i386",
                              loader, 1, machines);
    if (!guest || !lv.addGuestDomain(guest, VIRT_XEN, NULL, NULL, 0, NULL))
        die("capabilities");
}

static void setup(void)
{
    load();
    if (lv.initialize() < 0)
        die("virInitialize");
    struct driver *driver = calloc(1, sizeof(*driver));
    pthread_mutex_init(&driver->lock, NULL);
    if (!(driver->config = lv.configNew()))
        die("libxlDriverConfigNew");
    /* The mirror must match: these are the values libxlDriverConfigNew sets. */
    if (driver->config->keepAliveInterval != 5 || driver->config->keepAliveCount != 5 ||
        !driver->config->configBaseDir || strstr(driver->config->configBaseDir, "/libvirt") == NULL) {
        fprintf(stderr, "libvirt-anchor: libxlDriverConfig layout differs from libvirt 9.0's\n");
        exit(1);
    }
    if (!(caps = lv.capsNew(lv.archFromHost(), false, false)))
        die("virCapabilitiesNew");
    add_guest(OSTYPE_HVM, "xenfv", "/usr/lib/xen/boot/hvmloader");
    add_guest(OSTYPE_XEN, "xenpv", NULL);
    add_guest(OSTYPE_XENPVH, "xenpvh", NULL);
    driver->config->caps = caps;
    if (!(xmlopt = driver->xmlopt = lv.createXMLConf(driver)))
        die("libxlCreateXMLConf");
    if (!(conn = lv.getConnect()))
        die("virGetConnect");
}

enum kind { FROM_XL, FROM_XM, TO_XL, TO_XM };

static enum kind kind_of(const char *name)
{
    if (!strcmp(name, "from-xl")) return FROM_XL;
    if (!strcmp(name, "from-xm")) return FROM_XM;
    if (!strcmp(name, "to-xl")) return TO_XL;
    if (!strcmp(name, "to-xm")) return TO_XM;
    fprintf(stderr, "libvirt-anchor: unknown case '%s'\n", name);
    exit(2);
}

/* One conversion, as the libxl driver does it; returns the document (caller frees). */
static char *convert(enum kind k, const char *text)
{
    if (k == FROM_XL || k == FROM_XM) {
        void *conf = lv.confReadString(text, 0);
        if (!conf)
            die("virConfReadString");
        void *def = k == FROM_XL ? lv.parseXL(conf, caps, xmlopt) : lv.parseXM(conf, caps, xmlopt);
        if (!def)
            die("xenParse");
        char *xml = lv.defFormat(def, xmlopt, FORMAT_INACTIVE);
        if (!xml)
            die("virDomainDefFormat");
        lv.defFree(def);
        lv.confFree(conf);
        return xml;
    }
    void *def = lv.defParseString(text, xmlopt, NULL, PARSE_INACTIVE);
    if (!def)
        die("virDomainDefParseString");
    void *conf = k == TO_XL ? lv.formatXL(def, conn) : lv.formatXM(conn, def);
    if (!conf)
        die("xenFormat");
    int len = MAX_CONFIG_SIZE;
    char *out = calloc(1, len);
    if (lv.confWriteMem(out, &len, conf) < 0)
        die("virConfWriteMem");
    lv.confFree(conf);
    lv.defFree(def);
    return out;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc(n + 1);
    if (fread(buf, 1, n, f) != (size_t)n) {
        perror(path);
        exit(1);
    }
    buf[n] = 0;
    fclose(f);
    return buf;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Conversions per CPU second over one round of `budget` CPU seconds. */
static double round_rate(enum kind k, const char *text, double budget)
{
    double t0 = cpu_seconds(), used = 0;
    long n = 0;
    while (used < budget) {
        for (int i = 0; i < 10; i++)
            free(convert(k, text));
        n += 10;
        used = cpu_seconds() - t0;
    }
    return n / used;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "print")) {
        setup();
        char *out = convert(kind_of(argv[2]), slurp(argv[3]));
        fputs(out, stdout);
        free(out);
        return 0;
    }
    if (argc < 5 || strcmp(argv[1], "bench") || (argc - 3) % 2) {
        fprintf(stderr, "usage: libvirt-anchor print CASE FILE | bench SECONDS CASE FILE...\n");
        return 2;
    }
    setup();
    int ncases = (argc - 3) / 2;
    enum kind kinds[ncases];
    char *texts[ncases];
    double best[ncases];
    for (int i = 0; i < ncases; i++) {
        kinds[i] = kind_of(argv[3 + 2 * i]);
        texts[i] = slurp(argv[4 + 2 * i]);
        best[i] = 0;
        for (int w = 0; w < 500; w++)
            free(convert(kinds[i], texts[i]));
    }
    /* Same method as our side: best of 50 short rounds of CPU time, the cases taking turns. */
    const int rounds = 50;
    double budget = atof(argv[2]) / rounds;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < ncases; i++) {
            double rate = round_rate(kinds[i], texts[i], budget);
            if (rate > best[i])
                best[i] = rate;
        }
    for (int i = 0; i < ncases; i++)
        printf("%s %s %.0f\n", argv[3 + 2 * i], argv[4 + 2 * i], best[i]);
    return 0;
}
