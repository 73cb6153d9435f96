"""The loader benchmark's reference (scripts/bench_loader.sh runs it next to aim-bench-loader):
what a PyTorch user runs for the same job. torchvision ImageFolder-style JPEG loading with the
AIM pre-training augmentation: PIL decode, RandomResizedCrop(224, scale 0.4-1, bicubic),
RandomHorizontalFlip, ToTensor, Normalize (ImageNet statistics), shuffled batches of 64 from
a torch DataLoader with `workers` worker processes. One warm-up batch, then `batches` batches
are timed. Prints one JSON line: images, seconds, img_per_s, workers.
usage: ref_loader.py DIR [workers] [batches]   (Debian: python3-torch python3-torchvision python3-pil)"""
import glob, json, sys, time, torch
from PIL import Image
from torchvision import transforms as T
files = sorted(glob.glob(sys.argv[1] + "/**/*.jpg", recursive=True))
workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
batches = int(sys.argv[3]) if len(sys.argv) > 3 else 12
tf = T.Compose([T.RandomResizedCrop(224, scale=(0.4, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
class DS(torch.utils.data.Dataset):
    def __len__(s): return len(files)
    def __getitem__(s, i): return tf(Image.open(files[i]).convert("RGB"))
dl = torch.utils.data.DataLoader(DS(), batch_size=64, shuffle=True, num_workers=workers, drop_last=True)
it = iter(dl); next(it)
t = time.perf_counter(); n = 0
for _ in range(batches):
    try: b = next(it)
    except StopIteration: it = iter(dl); b = next(it)
    n += b.shape[0]
dt = time.perf_counter() - t
print(json.dumps(dict(images=n, seconds=dt, img_per_s=n / dt, workers=workers)))
