using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using MlNetFineTune.Models.Hub;
using Xunit;

namespace MlNetFineTune.Models.Tests;

public sealed class HubModelSourceTests : IDisposable
{
    private readonly HubTestTempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("hf://bert-org/tiny-bert", "bert-org", "tiny-bert", "main")]
    [InlineData("hf://Owner_1/Model.v2@v1.0", "Owner_1", "Model.v2", "v1.0")]
    [InlineData("HF://owner/name@refs/pr/1", "owner", "name", "refs/pr/1")]
    [InlineData("  hf://o/n@0123456789abcdef0123456789abcdef01234567  ", "o", "n", "0123456789abcdef0123456789abcdef01234567")]
    [InlineData("hf://a/b@release+cu118", "a", "b", "release+cu118")]
    public void Parse_HubReferences(string text, string owner, string name, string revision)
    {
        var source = ModelSource.Parse(text);

        Assert.Equal(ModelSourceKind.Hub, source.Kind);
        Assert.True(source.IsHub);
        Assert.Equal(owner, source.Owner);
        Assert.Equal(name, source.Name);
        Assert.Equal(revision, source.Revision);
        Assert.Equal($"{owner}/{name}", source.RepoId);
        Assert.Null(source.LocalPath);
        Assert.Equal($"hf://{owner}/{name}@{revision}", source.ToString());
        Assert.Equal(source, ModelSource.Parse(source.ToString()));
        Assert.Equal(revision.Length == 40, source.IsPinnedCommit);
    }

    [Theory]
    [InlineData("hf://", "exactly one '/'")]
    [InlineData("hf://owner", "exactly one '/'")]
    [InlineData("hf://owner/", "name is empty")]
    [InlineData("hf:///name", "owner is empty")]
    [InlineData("hf://owner/name/extra", "exactly one '/'")]
    [InlineData("hf://../name", "'..'")]
    [InlineData("hf://owner/..", "'..'")]
    [InlineData("hf://own..er/name", "'..'")]
    [InlineData("hf://own--er/name", "'--'")]
    [InlineData("hf://owner/na me", "may only contain")]
    [InlineData("hf://-owner/name", "must start and end")]
    [InlineData("hf://owner/name.", "must start and end")]
    [InlineData("hf://owner/näme", "may only contain")]
    [InlineData("hf://owner/name@", "empty revision")]
    [InlineData("hf://owner/name@a@b", "more than one '@'")]
    [InlineData("hf://owner/name@../etc", "not a valid ref name")]
    [InlineData("hf://owner/name@refs/../x", "not a valid ref name")]
    [InlineData("hf://owner/name@/main", "not a valid ref name")]
    [InlineData("hf://owner/name@main/", "not a valid ref name")]
    [InlineData("hf://owner/name@ma in", "may only contain")]
    [InlineData("s3://bucket/model", "scheme 's3://' is not supported")]
    [InlineData("https://huggingface.co/owner/name", "scheme 'https://' is not supported")]
    [InlineData("", "empty string")]
    [InlineData("   ", "empty string")]
    public void Parse_RejectsInvalidReferences(string text, string expectedFragment)
    {
        var error = Assert.Throws<FormatException>(() => ModelSource.Parse(text));

        Assert.Contains(expectedFragment, error.Message, StringComparison.Ordinal);
        Assert.False(ModelSource.TryParse(text, out _, out var tryError));
        Assert.Equal(error.Message, tryError);
    }

    [Fact]
    public void Parse_RejectsOverlongNames()
    {
        Assert.Throws<FormatException>(() => ModelSource.Parse("hf://owner/" + new string('a', 97)));
        Assert.True(ModelSource.Parse("hf://owner/" + new string('a', 96)).IsHub);
    }

    [Fact]
    public void Parse_LocalDirectory()
    {
        var source = ModelSource.Parse(_temp.Path);

        Assert.Equal(ModelSourceKind.LocalDirectory, source.Kind);
        Assert.False(source.IsHub);
        Assert.Equal(Path.GetFullPath(_temp.Path), source.LocalPath);
        Assert.Equal(source.LocalPath, source.ToString());
        Assert.Equal(source, ModelSource.Parse(new Uri(_temp.Path).AbsoluteUri)); // file:// URI
    }

    [Fact]
    public void Parse_MissingDirectoryOrFile_ExplainsAndHints()
    {
        var missing = Assert.Throws<FormatException>(() => ModelSource.Parse(Path.Combine(_temp.Path, "nope")));
        Assert.Contains("does not exist", missing.Message, StringComparison.Ordinal);

        var repoLike = Assert.Throws<FormatException>(() => ModelSource.Parse("some-org/some-model"));
        Assert.Contains("Did you mean 'hf://some-org/some-model'?", repoLike.Message, StringComparison.Ordinal);

        var file = Path.Combine(_temp.Path, "weights.bin");
        File.WriteAllBytes(file, [1]);
        var notDir = Assert.Throws<FormatException>(() => ModelSource.Parse(file));
        Assert.Contains("is a file", notDir.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromHub_ValidatesAndWithRevisionPins()
    {
        var source = ModelSource.FromHub("owner", "name");
        Assert.Equal("main", source.Revision);
        var pinned = source.WithRevision("0123456789abcdef0123456789abcdef01234567");
        Assert.True(pinned.IsPinnedCommit);
        Assert.Throws<ArgumentException>(() => ModelSource.FromHub("owner", "..", "main"));
        Assert.Throws<ArgumentException>(() => ModelSource.FromHub("owner", "name", "a/../b"));
    }
}

public sealed class HubOptionsTests
{
    [Fact]
    public void Defaults_WithEmptyEnvironment()
    {
        var unix = HubOptions.FromEnvironment(Env(("HOME", "/home/u")), isWindows: false);
        Assert.Equal("https://huggingface.co", unix.Endpoint);
        Assert.Equal(Path.Combine("/home/u", ".cache", "mlnetfinetune", "hub"), unix.CacheDirectory);
        Assert.False(unix.Offline);
        Assert.Null(unix.Token);

        var windows = HubOptions.FromEnvironment(Env(("LOCALAPPDATA", "/appdata")), isWindows: true);
        Assert.Equal(Path.Combine("/appdata", "MlNetFineTune", "hub"), windows.CacheDirectory);
    }

    [Fact]
    public void Environment_Precedence()
    {
        var xdg = HubOptions.FromEnvironment(Env(("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")), isWindows: false);
        Assert.Equal(Path.Combine("/xdg", "mlnetfinetune", "hub"), xdg.CacheDirectory);

        var hfHome = HubOptions.FromEnvironment(Env(("XDG_CACHE_HOME", "/xdg"), ("HF_HOME", "/hf")), isWindows: false);
        Assert.Equal(Path.Combine("/hf", "hub"), hfHome.CacheDirectory);

        var all = HubOptions.FromEnvironment(Env(
            ("HF_HOME", "/hf"), ("MLFT_CACHE", "/mlft-cache"),
            ("HF_ENDPOINT", "https://hf-mirror.example"), ("MLFT_HF_ENDPOINT", "http://127.0.0.1:1"),
            ("HF_HUB_OFFLINE", "0"), ("MLFT_OFFLINE", "1"), ("HF_TOKEN", "hf_abc")));
        Assert.Equal("/mlft-cache", all.CacheDirectory);
        Assert.Equal("http://127.0.0.1:1", all.Endpoint);
        Assert.True(all.Offline);
        Assert.Equal("hf_abc", all.Token);

        Assert.Equal("https://hf-mirror.example", HubOptions.FromEnvironment(Env(("HF_ENDPOINT", "https://hf-mirror.example"))).Endpoint);
        Assert.True(HubOptions.FromEnvironment(Env(("HF_HUB_OFFLINE", "true"))).Offline);
        Assert.False(HubOptions.FromEnvironment(Env(("MLFT_OFFLINE", "no"))).Offline);
    }

    private static Func<string, string?> Env(params (string Key, string Value)[] pairs)
    {
        var map = pairs.ToDictionary(p => p.Key, p => p.Value);
        return key => map.GetValueOrDefault(key);
    }
}

public sealed class HubCacheTests : IAsyncLifetime
{
    private const string Repo = "test-org/tiny-model";
    private const string Commit = "1111111111111111111111111111111111111111";

    private readonly HubTestTempDir _temp = new();
    private FakeHub _hub = null!;

    private string CacheDir => Path.Combine(_temp.Path, "cache");

    private string RepoDir => Path.Combine(CacheDir, "models--test-org--tiny-model");

    private static ModelSource Source => ModelSource.Parse("hf://" + Repo);

    public Task InitializeAsync()
    {
        _hub = new FakeHub();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _temp.Dispose();
    }

    [Fact]
    public async Task Resolve_DownloadsIntoHubLayout_AndSecondResolveMakesNoGet()
    {
        var content = Bytes(200_000, seed: 1);
        var file = _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        var progress = new RecordingProgress();
        using var resolver = new ModelResolver(Options());

        var path = await resolver.ResolveFileAsync(Source, "model.bin", progress);

        var sha = Sha256(content);
        Assert.Equal(Path.Combine(RepoDir, "snapshots", Commit, "model.bin"), path);
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal(content, File.ReadAllBytes(Path.Combine(RepoDir, "blobs", sha)));
        Assert.Equal(Commit, File.ReadAllText(Path.Combine(RepoDir, "refs", "main")));
        Assert.Equal([sha], Directory.GetFiles(Path.Combine(RepoDir, "blobs")).Select(Path.GetFileName));
        Assert.Equal(new DownloadProgress("model.bin", content.Length, content.Length), progress.Reports.Last());
        Assert.Equal(1, file.GetCount);
        var head = Assert.Single(_hub.Requests, r => r.Method == "HEAD");
        Assert.Equal($"/{Repo}/resolve/main/model.bin", head.Path);
        Assert.Null(head.Header("Authorization"));

        // Online again: revalidated with a HEAD only, no second GET.
        Assert.Equal(path, await resolver.ResolveFileAsync(Source, "model.bin"));
        Assert.Equal(1, file.GetCount);
        Assert.Equal(2, _hub.Requests.Count(r => r.Method == "HEAD"));

        // Without revalidation, or pinned to the commit: no request at all.
        var before = _hub.Requests.Count;
        using var lazy = new ModelResolver(Options(o => o.RevalidateCachedFiles = false));
        Assert.Equal(path, await lazy.ResolveFileAsync(Source, "model.bin"));
        Assert.Equal(path, await resolver.ResolveFileAsync(Source.WithRevision(Commit), "model.bin"));
        Assert.Equal(before, _hub.Requests.Count);
    }

    [Fact]
    public async Task Resolve_NonLfsFileInSubfolder_UsesGitEtagAndNestedSnapshotPath()
    {
        var content = Encoding.UTF8.GetBytes("{\"hidden_size\": 8}");
        var file = _hub.Add(Repo, "onnx/config.json", content, Commit, lfs: false);
        using var resolver = new ModelResolver(Options(o => o.LinkMode = SnapshotLinkMode.Copy));

        var path = await resolver.ResolveFileAsync(Source, "onnx/config.json");

        Assert.Equal(Path.Combine(RepoDir, "snapshots", Commit, "onnx", "config.json"), path);
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.True(File.Exists(Path.Combine(RepoDir, "blobs", file.ETag)));
        Assert.Equal(40, file.ETag.Length);
    }

    [Fact]
    public async Task Resolve_Sha256Etag_IsVerified_AndSymlinkModeLinksToBlob()
    {
        var content = Bytes(50_000, seed: 2);
        _hub.Add(Repo, "weights.safetensors", content, Commit, lfs: true);
        using var resolver = new ModelResolver(Options(o => o.LinkMode = SnapshotLinkMode.Symlink));

        var metadata = await resolver.Hub.GetFileMetadataAsync(Source, "weights.safetensors");
        var path = await resolver.ResolveFileAsync(Source, "weights.safetensors");

        Assert.True(metadata.IsSha256);
        Assert.Equal(Sha256(content), metadata.ETag);
        Assert.Equal(content.Length, metadata.Size);
        Assert.Equal(Commit, metadata.Commit);
        Assert.Equal(Sha256(content), Sha256(File.ReadAllBytes(path)));
        var link = new FileInfo(path).LinkTarget;
        if (link is not null)
        {
            Assert.Equal(Path.Combine("..", "..", "blobs", Sha256(content)), link);
        }
    }

    [Fact]
    public async Task Resolve_LfsRedirectToCdn_ReadsLinkedHeaders_AndKeepsTokenOnHub()
    {
        var content = Bytes(30_000, seed: 3);
        var file = _hub.Add(Repo, "model.onnx", content, Commit, lfs: true);
        file.RedirectToCdn = true;
        using var resolver = new ModelResolver(Options(o => o.Token = "hf_secret"));

        var path = await resolver.ResolveFileAsync(Source, "model.onnx");

        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.True(File.Exists(Path.Combine(RepoDir, "blobs", Sha256(content))));
        var head = Assert.Single(_hub.Requests, r => r.Method == "HEAD");
        Assert.Equal("Bearer hf_secret", head.Header("Authorization"));
        var cdnGet = Assert.Single(_hub.CdnRequests);
        Assert.Equal("GET", cdnGet.Method);
        Assert.Null(cdnGet.Header("Authorization"));
        Assert.DoesNotContain(_hub.Requests, r => r.Method == "GET");
    }

    [Fact]
    public async Task Resolve_ConnectionDroppedMidFile_ResumesWithRange()
    {
        var content = Bytes(120_000, seed: 4);
        var file = _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        file.DropFirstGetAfter = content.Length / 2;
        using var resolver = new ModelResolver(Options());

        var path = await resolver.ResolveFileAsync(Source, "model.bin");

        Assert.Equal(content, File.ReadAllBytes(path));
        var gets = _hub.Requests.Where(r => r.Method == "GET").ToList();
        Assert.Equal(2, gets.Count);
        Assert.Null(gets[0].Header("Range"));
        Assert.Equal($"bytes={content.Length / 2}-", gets[1].Header("Range"));
        Assert.Equal([Sha256(content)], Directory.GetFiles(Path.Combine(RepoDir, "blobs")).Select(Path.GetFileName));
    }

    [Fact]
    public async Task Resolve_ServerIgnoringRange_Answers200_DownloadRestartsFromZero()
    {
        var content = Bytes(80_000, seed: 5);
        var file = _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        file.DropFirstGetAfter = 30_000;
        file.IgnoreRange = true;
        using var resolver = new ModelResolver(Options());

        var path = await resolver.ResolveFileAsync(Source, "model.bin");

        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal(2, file.GetCount);
    }

    [Fact]
    public async Task Resolve_WrongBytesForSha256Etag_ThrowsAndCachesNothing()
    {
        var content = Bytes(40_000, seed: 6);
        var file = _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        file.ServeInstead = Bytes(40_000, seed: 7);
        using var resolver = new ModelResolver(Options());

        var error = await Assert.ThrowsAsync<HubDownloadException>(() => resolver.ResolveFileAsync(Source, "model.bin"));

        Assert.Equal("model.bin", error.FileName);
        Assert.Equal(Sha256(content), error.Expected);
        Assert.Equal(Sha256(file.ServeInstead), error.Actual);
        Assert.Contains("model.bin", error.Message, StringComparison.Ordinal);
        Assert.Contains(Sha256(content), error.Message, StringComparison.Ordinal);
        Assert.Contains(Sha256(file.ServeInstead), error.Message, StringComparison.Ordinal);
        Assert.Empty(FilesUnder(Path.Combine(RepoDir, "snapshots")));
        Assert.Empty(FilesUnder(Path.Combine(RepoDir, "blobs")));
        Assert.False(File.Exists(Path.Combine(RepoDir, "refs", "main")));
    }

    [Fact]
    public async Task Resolve_HttpErrors_AreClear()
    {
        _hub.Add(Repo, "config.json", [1, 2, 3], Commit, lfs: false);
        var gated = _hub.Add("meta/gated-model", "config.json", [1], Commit, lfs: false);
        gated.Status = 403;
        gated.ErrorCode = "GatedRepo";
        using var resolver = new ModelResolver(Options(o => o.Token = "hf_tok"));

        var entry = await Assert.ThrowsAsync<HubEntryNotFoundException>(() => resolver.ResolveFileAsync(Source, "missing.bin"));
        Assert.IsAssignableFrom<FileNotFoundException>(entry);
        Assert.Equal("missing.bin", entry.FileName);
        Assert.Equal(Repo, entry.RepoId);
        Assert.Equal("main", entry.Revision);
        Assert.Contains("'missing.bin' was not found in test-org/tiny-model at revision 'main'", entry.Message, StringComparison.Ordinal);

        var repo = await Assert.ThrowsAsync<HubRepositoryNotFoundException>(() => resolver.ResolveFileAsync(ModelSource.Parse("hf://nobody/nothing"), "config.json"));
        Assert.Equal(HttpStatusCode.NotFound, repo.StatusCode);
        Assert.Contains("Repository nobody/nothing was not found", repo.Message, StringComparison.Ordinal);
        Assert.Contains("private or gated", repo.Message, StringComparison.Ordinal);

        var denied = await Assert.ThrowsAsync<HubAccessDeniedException>(() => resolver.ResolveFileAsync(ModelSource.Parse("hf://meta/gated-model"), "config.json"));
        Assert.True(denied.IsGated);
        Assert.Contains("gated", denied.Message, StringComparison.Ordinal);
        Assert.All(_hub.Requests, r => Assert.Equal("Bearer hf_tok", r.Header("Authorization")));

        // Client errors are not retried.
        Assert.Equal(3, _hub.Requests.Count);
        Assert.False(Directory.Exists(Path.Combine(CacheDir, "models--nobody--nothing", "snapshots")));
    }

    [Fact]
    public async Task Resolve_ServerErrors_AreRetriedWithBackoff()
    {
        var content = Bytes(10_000, seed: 8);
        var file = _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        file.Failures = 2;
        file.GetFailures = 1;
        using var resolver = new ModelResolver(Options());

        var path = await resolver.ResolveFileAsync(Source, "model.bin");

        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal(3, _hub.Requests.Count(r => r.Method == "HEAD"));
        Assert.Equal(2, _hub.Requests.Count(r => r.Method == "GET"));

        var always = _hub.Add(Repo, "broken.bin", content, Commit, lfs: true);
        always.Failures = int.MaxValue;
        var error = await Assert.ThrowsAsync<HubUnavailableException>(() => resolver.ResolveFileAsync(Source, "broken.bin"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, error.LastStatusCode);
        Assert.Contains("broken.bin", error.Message, StringComparison.Ordinal);
        Assert.Equal(4, _hub.Requests.Count(r => r.Path.EndsWith("broken.bin", StringComparison.Ordinal))); // 1 + MaxRetries
    }

    [Fact]
    public async Task Offline_CachedFile_IsResolvedWithoutNetwork()
    {
        var content = Bytes(5_000, seed: 9);
        _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        string online;
        using (var resolver = new ModelResolver(Options()))
        {
            online = await resolver.ResolveFileAsync(Source, "model.bin");
        }

        var handler = new NoNetworkHandler();
        using var http = new HttpClient(handler);
        using var offline = new ModelResolver(Options(o =>
        {
            o.Offline = true;
            o.HttpClient = http;
        }));

        Assert.Equal(online, await offline.ResolveFileAsync(Source, "model.bin"));
        Assert.Equal(online, await offline.ResolveFileAsync(Source.WithRevision(Commit), "model.bin"));
        Assert.Equal(Path.GetDirectoryName(online), await offline.ResolveDirectoryAsync(Source, ["model.bin"], ["tokenizer.json"]));
        Assert.Equal(0, handler.Calls);
    }

    [Fact]
    public async Task Offline_NotCached_ThrowsFileNotFoundNamingRepoRevisionFile()
    {
        var handler = new NoNetworkHandler();
        using var http = new HttpClient(handler);
        using var offline = new ModelResolver(Options(o =>
        {
            o.Offline = true;
            o.HttpClient = http;
        }));

        var error = await Assert.ThrowsAsync<HubOfflineFileNotFoundException>(
            () => offline.ResolveFileAsync(ModelSource.Parse("hf://test-org/tiny-model@v2"), "model.bin"));

        Assert.IsAssignableFrom<FileNotFoundException>(error);
        Assert.Equal("model.bin", error.FileName);
        Assert.Contains("test-org/tiny-model", error.Message, StringComparison.Ordinal);
        Assert.Contains("'v2'", error.Message, StringComparison.Ordinal);
        Assert.Contains("'model.bin'", error.Message, StringComparison.Ordinal);
        Assert.Contains("offline", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, handler.Calls);
    }

    [Fact]
    public async Task Online_HubUnreachable_FallsBackToCache_ElseExplains()
    {
        var content = Bytes(5_000, seed: 10);
        _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        using (var resolver = new ModelResolver(Options()))
        {
            await resolver.ResolveFileAsync(Source, "model.bin");
        }

        var endpoint = _hub.Endpoint;
        await _hub.DisposeAsync(); // port closed: connection refused
        using var unreachable = new ModelResolver(Options(o =>
        {
            o.Endpoint = endpoint;
            o.MaxRetries = 1;
        }));

        var path = await unreachable.ResolveFileAsync(Source, "model.bin");
        Assert.Equal(content, File.ReadAllBytes(path));

        var error = await Assert.ThrowsAsync<HubUnavailableException>(() => unreachable.ResolveFileAsync(Source, "other.bin"));
        Assert.Contains("other.bin", error.Message, StringComparison.Ordinal);
        Assert.Contains("not in the cache", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Online_AuthRefusedWithCachedFile_UsesCache_ElseClearError()
    {
        var cached = _hub.Add(Repo, "model.bin", Bytes(2_000, seed: 14), Commit, lfs: true);
        var uncached = _hub.Add(Repo, "extra.bin", Bytes(2_000, seed: 15), Commit, lfs: true);
        using var resolver = new ModelResolver(Options());
        var path = await resolver.ResolveFileAsync(Source, "model.bin");
        cached.Status = uncached.Status = 401;
        cached.ErrorCode = uncached.ErrorCode = "RepoNotFound";

        Assert.Equal(path, await resolver.ResolveFileAsync(Source, "model.bin"));
        var error = await Assert.ThrowsAsync<HubRepositoryNotFoundException>(() => resolver.ResolveFileAsync(Source, "extra.bin"));
        Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
        Assert.Contains("No token was sent: set HF_TOKEN", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancellation_LeavesNoFinalFile_AndTheNextResolveResumes()
    {
        var content = Bytes(100_000, seed: 11);
        var file = _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        file.StallFirstGetAfter = 40_000;
        using var cts = new CancellationTokenSource();
        var progress = new RecordingProgress(p =>
        {
            if (p.BytesDownloaded >= 40_000)
            {
                cts.Cancel();
            }
        });
        using var resolver = new ModelResolver(Options());

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => resolver.ResolveFileAsync(Source, "model.bin", progress, cts.Token));

        var blob = Path.Combine(RepoDir, "blobs", Sha256(content));
        Assert.False(File.Exists(blob));
        Assert.Empty(FilesUnder(Path.Combine(RepoDir, "snapshots")));
        Assert.Equal(40_000, new FileInfo(blob + ".incomplete").Length);

        var path = await resolver.ResolveFileAsync(Source, "model.bin");
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal("bytes=40000-", _hub.Requests.Last(r => r.Method == "GET").Header("Range"));
        Assert.False(File.Exists(blob + ".incomplete"));
    }

    [Fact]
    public async Task ConcurrentResolves_OfTheSameFile_DownloadOnceIntoOneBlob()
    {
        var content = Bytes(150_000, seed: 12);
        var file = _hub.Add(Repo, "model.bin", content, Commit, lfs: true);
        file.ChunkDelay = TimeSpan.FromMilliseconds(30);
        using var first = new ModelResolver(Options());
        using var second = new ModelResolver(Options());

        var paths = await Task.WhenAll(
            Task.Run(() => first.ResolveFileAsync(Source, "model.bin")),
            Task.Run(() => second.ResolveFileAsync(Source, "model.bin")));

        Assert.Equal(paths[0], paths[1]);
        Assert.Equal(content, File.ReadAllBytes(paths[0]));
        Assert.Equal(1, file.GetCount);
        Assert.Equal([Sha256(content)], Directory.GetFiles(Path.Combine(RepoDir, "blobs")).Select(Path.GetFileName));
        Assert.Equal([paths[0]], FilesUnder(Path.Combine(RepoDir, "snapshots")));
    }

    [Fact]
    public async Task ResolveDirectory_Hub_PinsOneCommit_AndSkipsMissingOptionalFiles()
    {
        _hub.Add(Repo, "config.json", Encoding.UTF8.GetBytes("{}"), Commit, lfs: false);
        _hub.Add(Repo, "model.bin", Bytes(1_000, seed: 13), Commit, lfs: true);
        using var resolver = new ModelResolver(Options());

        var dir = await resolver.ResolveDirectoryAsync(Source, ["config.json", "model.bin"], ["tokenizer.json"]);

        Assert.Equal(Path.Combine(RepoDir, "snapshots", Commit), dir);
        Assert.True(File.Exists(Path.Combine(dir, "config.json")));
        Assert.True(File.Exists(Path.Combine(dir, "model.bin")));
        Assert.False(File.Exists(Path.Combine(dir, "tokenizer.json")));
        var paths = _hub.Requests.Select(r => r.Path).Distinct().ToList();
        Assert.Contains($"/{Repo}/resolve/main/config.json", paths);
        Assert.Contains($"/{Repo}/resolve/{Commit}/model.bin", paths);
        Assert.Contains($"/{Repo}/resolve/{Commit}/tokenizer.json", paths);
    }

    [Fact]
    public async Task LocalDirectory_ResolvesInPlace_AndNamesTheMissingFile()
    {
        var dir = Path.Combine(_temp.Path, "local-model");
        Directory.CreateDirectory(Path.Combine(dir, "onnx"));
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        File.WriteAllText(Path.Combine(dir, "onnx", "model.onnx"), "x");
        var source = ModelSource.Parse(dir);
        using var resolver = new ModelResolver(Options());

        Assert.Equal(dir, await resolver.ResolveDirectoryAsync(source, ["config.json", "onnx/model.onnx"], ["absent.txt"]));
        Assert.Equal(Path.Combine(dir, "onnx", "model.onnx"), await resolver.ResolveFileAsync(source, "onnx/model.onnx"));

        var error = await Assert.ThrowsAsync<FileNotFoundException>(() => resolver.ResolveDirectoryAsync(source, ["config.json", "vocab.txt"]));
        Assert.Contains("missing required file 'vocab.txt'", error.Message, StringComparison.Ordinal);
        Assert.Equal(Path.Combine(dir, "vocab.txt"), error.FileName);

        var single = await Assert.ThrowsAsync<FileNotFoundException>(() => resolver.ResolveFileAsync(source, "vocab.txt"));
        Assert.Contains("'vocab.txt'", single.Message, StringComparison.Ordinal);
        Assert.Empty(_hub.Requests);
    }

    [Theory]
    [InlineData("../secrets.txt")]
    [InlineData("/etc/passwd")]
    [InlineData("a//b")]
    [InlineData("dir\\file")]
    [InlineData("")]
    public async Task UnsafeFileNames_AreRejectedBeforeAnyRequest(string fileName)
    {
        using var resolver = new ModelResolver(Options());

        await Assert.ThrowsAsync<ArgumentException>(() => resolver.ResolveFileAsync(Source, fileName));
        Assert.Empty(_hub.Requests);
    }

    private HubOptions Options(Action<HubOptions>? configure = null)
    {
        var options = HubOptions.FromEnvironment(_ => null);
        options.Endpoint = _hub.Endpoint;
        options.CacheDirectory = CacheDir;
        options.RetryDelay = TimeSpan.FromMilliseconds(5);
        options.MaxRetryDelay = TimeSpan.FromMilliseconds(20);
        options.MaxRetries = 3;
        options.RequestTimeout = TimeSpan.FromSeconds(5);
        options.ReadTimeout = TimeSpan.FromSeconds(5);
        configure?.Invoke(options);
        return options;
    }

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static List<string> FilesUnder(string dir) =>
        Directory.Exists(dir) ? Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToList() : [];

    private sealed class RecordingProgress(Action<DownloadProgress>? onReport = null) : IProgress<DownloadProgress>
    {
        public ConcurrentQueue<DownloadProgress> Reports { get; } = new();

        public void Report(DownloadProgress value)
        {
            Reports.Enqueue(value);
            onReport?.Invoke(value);
        }
    }

    private sealed class NoNetworkHandler : HttpMessageHandler
    {
        private int _calls;

        public int Calls => _calls;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            throw new InvalidOperationException($"Offline mode made a network request: {request.Method} {request.RequestUri}");
        }
    }
}

/// <summary>A temporary directory removed on dispose.</summary>
internal sealed class HubTestTempDir : IDisposable
{
    public HubTestTempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mlft-hub-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}

/// <summary>One file of the fake hub, with switches for misbehaviour.</summary>
internal sealed class FakeHubFile
{
    private int _getCount;

    public required byte[] Content { get; init; }

    public required string ETag { get; init; }

    public required string Commit { get; init; }

    public bool Lfs { get; init; }

    public bool RedirectToCdn { get; set; }

    public int? DropFirstGetAfter { get; set; }

    public int? StallFirstGetAfter { get; set; }

    public byte[]? ServeInstead { get; set; }

    public bool IgnoreRange { get; set; }

    public TimeSpan ChunkDelay { get; set; }

    /// <summary>Requests of any kind answered 503 before the file is served.</summary>
    public int Failures { get; set; }

    /// <summary>GETs answered 503 (after <see cref="Failures"/> ran out).</summary>
    public int GetFailures { get; set; }

    public int? Status { get; set; }

    public string? ErrorCode { get; set; }

    public int GetCount => Volatile.Read(ref _getCount);

    public int NextGet() => Interlocked.Increment(ref _getCount);
}

/// <summary>
/// An in-process imitation of the hub's <c>/{owner}/{name}/resolve/{revision}/{file}</c> endpoint (with the
/// X-Repo-Commit, ETag, X-Linked-Etag and X-Linked-Size headers and Range support), plus a "CDN" on another port
/// that LFS files can redirect to.
/// </summary>
internal sealed class FakeHub : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, FakeHubFile> _files = new();
    private readonly ConcurrentDictionary<string, string> _repoCommits = new();
    private readonly HubLoopbackServer _server;
    private readonly HubLoopbackServer _cdn;
    private readonly object _sync = new();
    private bool _disposed;

    public FakeHub()
    {
        _server = new HubLoopbackServer(HandleHubAsync);
        _cdn = new HubLoopbackServer(HandleCdnAsync);
    }

    public string Endpoint => _server.BaseUrl;

    public IReadOnlyCollection<HubRecordedRequest> Requests => _server.Requests.ToArray();

    public IReadOnlyCollection<HubRecordedRequest> CdnRequests => _cdn.Requests.ToArray();

    public FakeHubFile Add(string repo, string path, byte[] content, string commit, bool lfs)
    {
        var etag = lfs
            ? Convert.ToHexStringLower(SHA256.HashData(content))
            : Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));
        var file = new FakeHubFile { Content = content, ETag = etag, Commit = commit, Lfs = lfs };
        _repoCommits[repo] = commit;
        _files[$"{repo}@main/{path}"] = file;
        _files[$"{repo}@{commit}/{path}"] = file;
        return file;
    }

    public async ValueTask DisposeAsync()
    {
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        await _server.DisposeAsync();
        await _cdn.DisposeAsync();
    }

    private async Task HandleHubAsync(HubRecordedRequest request, HubResponseWriter response, CancellationToken ct)
    {
        var segments = request.Path.Split('?')[0].Split('/');
        if (segments.Length < 6 || segments[3] != "resolve")
        {
            await response.SendAsync(400, ct: ct);
            return;
        }

        var repo = $"{segments[1]}/{segments[2]}";
        var revision = Uri.UnescapeDataString(segments[4]);
        var path = string.Join('/', segments.Skip(5).Select(Uri.UnescapeDataString));
        if (!_repoCommits.TryGetValue(repo, out var repoCommit))
        {
            await response.SendAsync(404, [new("X-Error-Code", "RepoNotFound"), new("X-Error-Message", "Repository not found")], ct: ct);
            return;
        }

        if (!_files.TryGetValue($"{repo}@{revision}/{path}", out var file))
        {
            await response.SendAsync(404, [new("X-Error-Code", "EntryNotFound"), new("X-Repo-Commit", repoCommit)], ct: ct);
            return;
        }

        if (file.Status is int status)
        {
            await response.SendAsync(status, file.ErrorCode is null ? null : [new("X-Error-Code", file.ErrorCode)], ct: ct);
            return;
        }

        if (TakeFailure(file, request.Method))
        {
            await response.SendAsync(503, [new("Retry-After", "0")], ct: ct);
            return;
        }

        var headers = new List<KeyValuePair<string, string>> { new("X-Repo-Commit", file.Commit) };
        if (file.Lfs)
        {
            headers.Add(new("X-Linked-Etag", $"\"{file.ETag}\""));
            headers.Add(new("X-Linked-Size", file.Content.Length.ToString()));
        }

        if (file.RedirectToCdn)
        {
            headers.Add(new("ETag", "\"redirect-etag-not-the-content\""));
            headers.Add(new("Location", $"{_cdn.BaseUrl}/cdn/{file.ETag}"));
            await response.SendAsync(302, headers, ct: ct);
            return;
        }

        headers.Add(new("ETag", file.Lfs ? $"\"{file.ETag}\"" : $"W/\"{file.ETag}\""));
        await ServeContentAsync(request, response, file, headers, ct);
    }

    private async Task HandleCdnAsync(HubRecordedRequest request, HubResponseWriter response, CancellationToken ct)
    {
        var etag = request.Path.Split('/').Last();
        var file = _files.Values.FirstOrDefault(f => f.ETag == etag);
        if (file is null)
        {
            await response.SendAsync(404, ct: ct);
            return;
        }

        await ServeContentAsync(request, response, file, [new("ETag", "\"s3-md5-like\"")], ct);
    }

    private static bool TakeFailure(FakeHubFile file, string method)
    {
        lock (file)
        {
            if (file.Failures > 0)
            {
                file.Failures--;
                return true;
            }

            if (method == "GET" && file.GetFailures > 0)
            {
                file.GetFailures--;
                return true;
            }

            return false;
        }
    }

    private static async Task ServeContentAsync(HubRecordedRequest request, HubResponseWriter response, FakeHubFile file, List<KeyValuePair<string, string>> headers, CancellationToken ct)
    {
        var bytes = file.ServeInstead ?? file.Content;
        var isGet = request.Method == "GET";
        var getNumber = isGet ? file.NextGet() : 0;
        var status = 200;
        var body = bytes;
        var range = request.Header("Range");
        if (isGet && range is not null && !file.IgnoreRange && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            var from = int.Parse(range["bytes=".Length..^1]);
            status = 206;
            body = bytes[from..];
            headers.Add(new("Content-Range", $"bytes {from}-{bytes.Length - 1}/{bytes.Length}"));
        }

        var sendOnly = getNumber == 1 ? file.DropFirstGetAfter : null;
        var stallAfter = getNumber == 1 ? file.StallFirstGetAfter : null;
        await response.SendAsync(status, headers, body, sendOnly: sendOnly, stallAfter: stallAfter, chunkDelay: file.ChunkDelay, ct: ct);
    }
}

internal sealed record HubRecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
}

/// <summary>Writes one raw HTTP/1.1 response; can drop or stall the connection part-way through the body.</summary>
internal sealed class HubResponseWriter(Stream stream, bool isHead)
{
    public bool CloseConnection { get; private set; }

    public async Task SendAsync(
        int status,
        IEnumerable<KeyValuePair<string, string>>? headers = null,
        byte[]? body = null,
        int? sendOnly = null,
        int? stallAfter = null,
        TimeSpan chunkDelay = default,
        CancellationToken ct = default)
    {
        body ??= [];
        var head = new StringBuilder();
        head.Append("HTTP/1.1 ").Append(status).Append(' ').Append(((HttpStatusCode)status).ToString()).Append("\r\n");
        foreach (var (key, value) in headers ?? [])
        {
            head.Append(key).Append(": ").Append(value).Append("\r\n");
        }

        head.Append("Content-Length: ").Append(body.Length).Append("\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), ct);
        if (isHead)
        {
            await stream.FlushAsync(ct);
            return;
        }

        var limit = Math.Min(body.Length, sendOnly ?? stallAfter ?? body.Length);
        if (chunkDelay > TimeSpan.Zero)
        {
            var chunk = Math.Max(1, limit / 5);
            for (var offset = 0; offset < limit; offset += chunk)
            {
                await stream.WriteAsync(body.AsMemory(offset, Math.Min(chunk, limit - offset)), ct);
                await stream.FlushAsync(ct);
                await Task.Delay(chunkDelay, ct);
            }
        }
        else
        {
            await stream.WriteAsync(body.AsMemory(0, limit), ct);
        }

        await stream.FlushAsync(ct);
        if (stallAfter is not null)
        {
            await Task.Delay(Timeout.Infinite, ct); // until the server stops
        }

        if (sendOnly is not null)
        {
            CloseConnection = true; // drop mid-body
        }
    }
}

/// <summary>A minimal keep-alive HTTP/1.1 server on 127.0.0.1 (requests without bodies only).</summary>
internal sealed class HubLoopbackServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<TcpClient> _clients = [];
    private readonly Func<HubRecordedRequest, HubResponseWriter, CancellationToken, Task> _handler;
    private readonly Task _acceptLoop;

    public HubLoopbackServer(Func<HubRecordedRequest, HubResponseWriter, CancellationToken, Task> handler)
    {
        _handler = handler;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        BaseUrl = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _acceptLoop = AcceptLoopAsync();
    }

    public string BaseUrl { get; }

    public ConcurrentQueue<HubRecordedRequest> Requests { get; } = new();

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        foreach (var client in _clients)
        {
            client.Dispose();
        }

        try
        {
            await _acceptLoop;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _clients.Add(client);
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                while (!_stop.IsCancellationRequested)
                {
                    var request = await ReadRequestAsync(stream, _stop.Token);
                    if (request is null)
                    {
                        return;
                    }

                    Requests.Enqueue(request);
                    var writer = new HubResponseWriter(stream, request.Method == "HEAD");
                    await _handler(request, writer, _stop.Token);
                    if (writer.CloseConnection)
                    {
                        return;
                    }
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // Client went away or the server stopped.
            }
        }
    }

    private static async Task<HubRecordedRequest?> ReadRequestAsync(Stream stream, CancellationToken ct)
    {
        var buffer = new List<byte>(512);
        var one = new byte[1];
        while (true)
        {
            if (await stream.ReadAsync(one, ct) == 0)
            {
                return null;
            }

            buffer.Add(one[0]);
            var n = buffer.Count;
            if (n >= 4 && buffer[n - 4] == '\r' && buffer[n - 3] == '\n' && buffer[n - 2] == '\r' && buffer[n - 1] == '\n')
            {
                break;
            }

            if (n > 64 * 1024)
            {
                return null;
            }
        }

        var lines = Encoding.ASCII.GetString(buffer.ToArray()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var requestLine = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0)
            {
                headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
            }
        }

        return new HubRecordedRequest(requestLine[0], requestLine[1], headers);
    }
}
