using System.Globalization;
using System.Text;

namespace MigrationFabric.Grains.Membership;

/// <summary>Stores a row's suspicion votes in one text column of the SQL stores: <c>voter|utcTicks</c> joined by <c>;</c>.</summary>
internal static class SuspicionCodec
{
    public static string Encode(IReadOnlyList<SuspicionVote> votes)
    {
        var text = new StringBuilder();
        foreach (var v in votes)
        {
            if (text.Length > 0) text.Append(';');
            text.Append(v.Voter.ToString()).Append('|').Append(v.Time.UtcTicks.ToString(CultureInfo.InvariantCulture));
        }
        return text.ToString();
    }

    public static IReadOnlyList<SuspicionVote> Decode(string text)
    {
        if (string.IsNullOrEmpty(text))
            return [];
        var votes = new List<SuspicionVote>();
        foreach (var part in text.Split(';'))
        {
            int bar = part.LastIndexOf('|');
            if (bar <= 0 || !long.TryParse(part.AsSpan(bar + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long ticks))
                throw new MembershipTableException($"Membership table holds a malformed suspicion vote '{part}'.");
            SiloAddress voter;
            try
            {
                voter = SiloAddress.Parse(part[..bar]);
            }
            catch (FormatException e)
            {
                throw new MembershipTableException($"Membership table holds a malformed suspicion vote '{part}'.", e);
            }
            votes.Add(new SuspicionVote(voter, Ticks(ticks)));
        }
        return votes;
    }

    public static DateTimeOffset Ticks(long utcTicks) => new(utcTicks, TimeSpan.Zero);

    public static SiloStatus Status(long value) =>
        value is >= (long)SiloStatus.Joining and <= (long)SiloStatus.Dead
            ? (SiloStatus)value
            : throw new MembershipTableException($"Membership table holds an unknown silo status {value}.");

    public static string NewEtag() => Guid.NewGuid().ToString("N");
}
