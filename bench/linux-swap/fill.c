// Writes a VM's worth of pages into anonymous memory the way a naive destination receives them (first copies in order,
// then retransfers of the hot first 1/16), timing each phase; run inside a memory cgroup smaller than the VM.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){
  size_t mib=argc>1?strtoull(argv[1],0,10):4096, hot=mib/16;
  size_t bytes=mib<<20, pages=bytes/4096;
  char*m=mmap(0,bytes,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  if(m==MAP_FAILED){perror("mmap");return 1;}
  char src[4096]; for(int i=0;i<4096;i++)src[i]=(char)(i*7+1);
  double t0=now();
  for(size_t p=0;p<pages;p++){src[0]=(char)p;memcpy(m+p*4096,src,4096);}
  double t1=now();
  printf("first copies: %zu MiB in %.3f s = %.0f MB/s\n",mib,t1-t0,bytes/(t1-t0)/1e6);
  size_t hp=(hot<<20)/4096;
  for(size_t p=0;p<hp;p++){src[1]=(char)p;memcpy(m+p*4096,src,4096);}
  double t2=now();
  printf("retransfers of the first %zu MiB: %.3f s = %.0f MB/s\n",hot,t2-t1,(hot<<20)/(t2-t1)/1e6);
  unsigned long sum=0; for(size_t p=0;p<pages;p+=1)sum+=m[p*4096];
  double t3=now();
  printf("read every page once after: %.3f s = %.0f MB/s (sum %lu)\n",t3-t2,bytes/(t3-t2)/1e6,sum);
  return 0;
}
