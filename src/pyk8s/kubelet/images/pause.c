/* The pod sandbox's first process: holds the pod's namespaces, reaps zombies, and exits
   cleanly on SIGINT/SIGTERM. Built with `gcc -static -Os` into pyk8s/pause. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_terminate(int signal_number) { (void)signal_number; _exit(0); }

static void on_child(int signal_number) {
    (void)signal_number;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction terminate = {.sa_handler = on_terminate};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &terminate, NULL);
    sigaction(SIGTERM, &terminate, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;) pause();
    return 1;
}
